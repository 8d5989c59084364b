//! Catalog entries: Composio tools → `ToolSpec` (with risk tagging), toolkits, and the
//! cached copy of the catalog kept between refreshes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use logline_core::tool::ToolSpec;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::client::{WireTool, WireToolkit};
use crate::risk::{RiskInput, RiskRules};

/// A Composio toolkit (an app such as `github`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Toolkit {
    /// Slug.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Whether its tools work without a connected account.
    pub no_auth: bool,
    /// Auth schemes (`OAUTH2`, `API_KEY`, ...).
    pub auth_schemes: Vec<String>,
    /// Description.
    pub description: String,
    /// Category names.
    pub categories: Vec<String>,
    /// Number of tools, as Composio reports it.
    pub tools_count: Option<u64>,
    /// Last change, as Composio reports it.
    pub updated_at: Option<String>,
}

impl Toolkit {
    pub(crate) fn from_wire(w: WireToolkit) -> Self {
        Toolkit {
            no_auth: w.no_auth.unwrap_or(false),
            name: if w.name.is_empty() {
                w.slug.clone()
            } else {
                w.name
            },
            slug: w.slug,
            auth_schemes: w.auth_schemes,
            description: w.meta.description,
            categories: w.meta.categories.into_iter().map(|c| c.name).collect(),
            tools_count: w
                .meta
                .tools_count
                .filter(|n| n.is_finite() && *n >= 0.0)
                .map(|n| n as u64),
            updated_at: w.meta.updated_at,
        }
    }

    /// What changes when the toolkit's tools change (INFERRED: Composio bumps a toolkit's
    /// `updated_at` when its tools change; `tools_count` catches additions and removals).
    /// `None` when Composio sent neither, so the toolkit is always re-read.
    pub fn fingerprint(&self) -> Option<String> {
        let at = self.updated_at.as_deref()?;
        Some(format!("{at}|{}", self.tools_count.unwrap_or(u64::MAX)))
    }
}

/// A tool as converted, with the version execute should pin.
#[derive(Debug, Clone)]
pub(crate) struct Converted {
    pub spec: ToolSpec,
    pub version: Option<String>,
}

/// Converts a Composio tool, tagging its risk.
pub(crate) fn convert_tool(
    w: WireTool,
    hub: &str,
    rules: &RiskRules,
    toolkit: Option<&Toolkit>,
) -> Converted {
    let description = if w.description.trim().is_empty() {
        w.human_description.clone().unwrap_or_default()
    } else {
        w.description.clone()
    };
    let input_schema = match w.input_parameters {
        Value::Object(_) => w.input_parameters.clone(),
        _ => json!({"type": "object", "properties": {}}),
    };
    let output_schema = match &w.output_parameters {
        Value::Object(m) if !m.is_empty() => Some(w.output_parameters.clone()),
        _ => None,
    };
    let no_auth = w.no_auth || toolkit.is_some_and(|t| t.no_auth);
    let toolkit_slug = (!w.toolkit.slug.is_empty()).then(|| w.toolkit.slug.clone());
    let updated_at = toolkit
        .and_then(|t| t.updated_at.as_deref())
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_else(Utc::now);
    let assessment = rules.assess(&RiskInput {
        slug: &w.slug,
        name: &w.name,
        toolkit: toolkit_slug.as_deref(),
        tags: &w.tags,
        http_method: None,
    });
    let mut spec = ToolSpec {
        id: w.slug.clone(),
        name: if w.name.is_empty() {
            w.slug.clone()
        } else {
            w.name
        },
        description,
        toolkit: toolkit_slug,
        input_schema,
        output_schema,
        risk_level: Default::default(),
        side_effects: Vec::new(),
        tags: Vec::new(),
        requires_confirmation: false,
        idempotent: false,
        requires_connection: !no_auth,
        hub: hub.to_string(),
        timeout_ms: None,
        updated_at,
    };
    assessment.apply(&mut spec);
    Converted {
        spec,
        version: w.version,
    }
}

/// The cached copy of the catalog.
#[derive(Debug, Clone, Default)]
pub struct CatalogSnapshot {
    /// Tools by slug.
    pub tools: HashMap<String, Arc<ToolSpec>>,
    /// Tool versions by slug.
    pub versions: HashMap<String, String>,
    /// Toolkits by slug.
    pub toolkits: BTreeMap<String, Toolkit>,
    /// When it was last refreshed (monotonic).
    pub refreshed: Option<Instant>,
    /// When the last full refresh ran (monotonic).
    pub full_refreshed: Option<Instant>,
}

impl CatalogSnapshot {
    /// Number of tools.
    pub fn len(&self) -> usize {
        self.tools.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// A tool by slug.
    pub fn tool(&self, slug: &str) -> Option<&Arc<ToolSpec>> {
        self.tools.get(slug)
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(v: Value) -> WireTool {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    #[test]
    fn converts_the_documented_fixture() {
        let w = wire(
            json!({"slug":"NOTION_ARCHIVE_NOTION_PAGE","name":"Archive Notion Page","description":"Archives …",
            "toolkit":{"slug":"notion","name":"notion","logo":"…"},
            "input_parameters":{"type":"object","title":"ArchiveNotionPageRequest",
              "properties":{"page_id":{"type":"string","description":"…"},"archive":{"type":"boolean","default":true}},
              "required":["page_id"]},
            "output_parameters":{"type":"object","properties":{"data":{},"error":{},"successful":{"type":"boolean"}},"required":["data","successful"]},
            "scopes":["Read content"],"tags":["destructiveHint","openWorldHint"],"no_auth":false,
            "version":"20260113_00","available_versions":["20260113_00"],"is_deprecated":false}),
        );
        let c = convert_tool(w, "composio", &RiskRules::default(), None);
        assert_eq!(c.spec.id, "NOTION_ARCHIVE_NOTION_PAGE");
        assert_eq!(c.spec.toolkit.as_deref(), Some("notion"));
        assert_eq!(c.spec.risk_level, logline_core::tool::RiskLevel::High);
        assert!(c.spec.requires_confirmation && c.spec.requires_connection);
        assert!(c.spec.tags.contains(&"delete".to_string()));
        assert_eq!(c.spec.input_schema["required"][0], "page_id");
        assert!(c.spec.output_schema.is_some());
        assert_eq!(c.version.as_deref(), Some("20260113_00"));
    }

    #[test]
    fn no_auth_toolkits_need_no_connection() {
        let w = wire(
            json!({"slug":"HACKERNEWS_GET_USER","name":"Get user","toolkit":{"slug":"hackernews"},"tags":["readOnlyHint"]}),
        );
        let kit = Toolkit {
            slug: "hackernews".into(),
            name: "Hacker News".into(),
            no_auth: true,
            auth_schemes: vec![],
            description: String::new(),
            categories: vec![],
            tools_count: Some(1),
            updated_at: Some("2025-01-01T00:00:00Z".into()),
        };
        let c = convert_tool(w, "composio", &RiskRules::default(), Some(&kit));
        assert!(!c.spec.requires_connection);
        assert_eq!(c.spec.risk_level, logline_core::tool::RiskLevel::Low);
        assert_eq!(c.spec.input_schema["type"], "object");
        assert_eq!(c.spec.updated_at.to_rfc3339(), "2025-01-01T00:00:00+00:00");
        assert_eq!(kit.fingerprint().as_deref(), Some("2025-01-01T00:00:00Z|1"));
    }
}
