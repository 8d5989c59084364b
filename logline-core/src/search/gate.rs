//! The policy gate: which tools a request may see at all, decided before any ranking.
//!
//! A tool passes when every rule holds:
//! 1. **connection**: its toolkit is one the user has connected (an active connection), or it
//!    needs no connection (`requires_connection == false`: local and no-auth tools) and
//!    [`GateRules::allow_no_auth_tools`] is on;
//! 2. **tags**: none of its tags is blocked (default: `delete`, `money`, `admin`);
//! 3. **risk**: its `risk_level` is at most [`GateRules::max_risk`] (default `medium`);
//! 4. **app scope**: when the app restricts tools or toolkits, it is one of them; it is not
//!    explicitly denied; its hub is allowed.
//!
//! The policy engine (`PolicyAction::ToolExposure`) is asked afterwards, per candidate, by
//! [`super::ToolSearch`]; a denied tool is never shown to a model.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::tool::{Connection, RiskLevel, ToolSpec};

/// Tags blocked by default: tools that destroy data, move money or administer accounts are
/// never offered unless the host allows them.
pub const DEFAULT_BLOCKED_TAGS: [&str; 3] = ["delete", "money", "admin"];

/// Normalised toolkit key: lowercase letters and digits only, so `Google Sheets`,
/// `google_sheets` and `googlesheets` name the same toolkit.
pub fn toolkit_key(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Static exposure rules of one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateRules {
    /// Tools carrying any of these tags are hidden (case-insensitive).
    #[serde(default = "default_blocked")]
    pub blocked_tags: Vec<String>,
    /// Highest risk level shown.
    #[serde(default = "default_max_risk")]
    pub max_risk: RiskLevel,
    /// Whether tools that need no connection (local, no-auth) pass the connection rule.
    #[serde(default = "yes")]
    pub allow_no_auth_tools: bool,
    /// App scope: only these toolkits (with `allowed_tools`, either list admits a tool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_toolkits: Option<Vec<String>>,
    /// App scope: only these tool ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_tools: Option<Vec<String>>,
    /// Tool ids never shown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied_tools: Vec<String>,
    /// Only tools of these hubs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hubs: Option<Vec<String>>,
}

fn default_blocked() -> Vec<String> {
    DEFAULT_BLOCKED_TAGS.iter().map(|s| s.to_string()).collect()
}

fn default_max_risk() -> RiskLevel {
    RiskLevel::Medium
}

fn yes() -> bool {
    true
}

impl Default for GateRules {
    fn default() -> Self {
        GateRules {
            blocked_tags: default_blocked(),
            max_risk: default_max_risk(),
            allow_no_auth_tools: true,
            allowed_toolkits: None,
            allowed_tools: None,
            denied_tools: Vec::new(),
            hubs: None,
        }
    }
}

impl GateRules {
    /// No blocked tags, any risk, no scope: only the connection rule remains.
    pub fn permissive() -> Self {
        GateRules {
            blocked_tags: Vec::new(),
            max_risk: RiskLevel::High,
            ..Default::default()
        }
    }

    /// Sets the highest risk shown.
    pub fn max_risk(mut self, risk: RiskLevel) -> Self {
        self.max_risk = risk;
        self
    }

    /// Replaces the blocked tags.
    pub fn blocked_tags<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tags: I) -> Self {
        self.blocked_tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// Restricts to these toolkits.
    pub fn only_toolkits<I: IntoIterator<Item = S>, S: Into<String>>(mut self, t: I) -> Self {
        self.allowed_toolkits = Some(t.into_iter().map(Into::into).collect());
        self
    }

    /// Restricts to these tool ids.
    pub fn only_tools<I: IntoIterator<Item = S>, S: Into<String>>(mut self, t: I) -> Self {
        self.allowed_tools = Some(t.into_iter().map(Into::into).collect());
        self
    }
}

/// Which toolkits count as connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connected {
    /// Every toolkit (trusted offline use: evaluation, admin consoles).
    Unrestricted,
    /// Only these toolkit keys (see [`toolkit_key`]).
    Toolkits(HashSet<String>),
}

impl Connected {
    /// The toolkits of the active connections.
    pub fn from_connections<'a, I: IntoIterator<Item = &'a Connection>>(conns: I) -> Self {
        Connected::Toolkits(
            conns
                .into_iter()
                .filter(|c| c.active)
                .map(|c| toolkit_key(&c.toolkit))
                .collect(),
        )
    }

    /// Whether `toolkit` is connected.
    pub fn contains(&self, toolkit: &str) -> bool {
        match self {
            Connected::Unrestricted => true,
            Connected::Toolkits(set) => set.contains(&toolkit_key(toolkit)),
        }
    }
}

/// Why a tool was kept from a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DenyReason {
    /// Needs a connection the user does not have.
    NotConnected {
        /// The toolkit, if the tool has one.
        toolkit: Option<String>,
    },
    /// Needs no connection, but such tools are off for this request.
    NoAuthToolsOff,
    /// Carries a blocked tag.
    BlockedTag {
        /// The tag.
        tag: String,
    },
    /// Riskier than allowed.
    TooRisky {
        /// The tool's risk.
        risk: RiskLevel,
        /// The ceiling.
        max: RiskLevel,
    },
    /// Outside the app's allowed tools and toolkits.
    OutOfScope,
    /// Listed in `denied_tools`.
    DeniedTool,
    /// Executed by a hub that is not allowed.
    HubNotAllowed {
        /// The hub.
        hub: String,
    },
    /// The policy engine denied exposure.
    Policy {
        /// Deciding policy.
        policy_id: Option<String>,
        /// Its reason.
        reason: String,
    },
}

impl std::fmt::Display for DenyReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DenyReason::NotConnected { toolkit: Some(kit) } => {
                write!(
                    f,
                    "needs a connection to `{kit}`, which the user has not made"
                )
            }
            DenyReason::NotConnected { toolkit: None } => {
                write!(f, "needs a connection the user has not made")
            }
            DenyReason::NoAuthToolsOff => {
                write!(f, "tools without a connection are off for this request")
            }
            DenyReason::BlockedTag { tag } => write!(f, "carries the blocked tag `{tag}`"),
            DenyReason::TooRisky { risk, max } => write!(
                f,
                "risk {} is above the allowed {}",
                risk.as_str(),
                max.as_str()
            ),
            DenyReason::OutOfScope => write!(f, "outside the app's tools and toolkits"),
            DenyReason::DeniedTool => write!(f, "on the request's denied list"),
            DenyReason::HubNotAllowed { hub } => write!(f, "runs on hub `{hub}`, not allowed"),
            DenyReason::Policy {
                policy_id: Some(id),
                reason,
            } => write!(f, "denied by policy `{id}`: {reason}"),
            DenyReason::Policy {
                policy_id: None,
                reason,
            } => write!(f, "denied by policy: {reason}"),
        }
    }
}

/// Rules plus the user's connections, in a form that checks quickly.
#[derive(Debug, Clone)]
pub struct ToolGate {
    rules: GateRules,
    connected: Connected,
    blocked: HashSet<String>,
    scope_toolkits: Option<HashSet<String>>,
    scope_tools: Option<HashSet<String>>,
    denied: HashSet<String>,
    hubs: Option<HashSet<String>>,
}

impl ToolGate {
    /// A gate over `rules` and `connected`.
    pub fn new(rules: GateRules, connected: Connected) -> Self {
        ToolGate {
            blocked: rules
                .blocked_tags
                .iter()
                .map(|t| t.to_lowercase())
                .collect(),
            scope_toolkits: rules
                .allowed_toolkits
                .as_ref()
                .map(|v| v.iter().map(|t| toolkit_key(t)).collect()),
            scope_tools: rules
                .allowed_tools
                .as_ref()
                .map(|v| v.iter().cloned().collect()),
            denied: rules.denied_tools.iter().cloned().collect(),
            hubs: rules.hubs.as_ref().map(|v| v.iter().cloned().collect()),
            rules,
            connected,
        }
    }

    /// The rules.
    pub fn rules(&self) -> &GateRules {
        &self.rules
    }

    /// The connected toolkits.
    pub fn connected(&self) -> &Connected {
        &self.connected
    }

    /// Whether `tag` is blocked.
    pub fn is_blocked_tag(&self, tag: &str) -> bool {
        self.blocked.contains(&tag.to_lowercase())
    }

    /// Normalised keys of the scope's toolkits, if scoped.
    pub(crate) fn scope_toolkits(&self) -> Option<&HashSet<String>> {
        self.scope_toolkits.as_ref()
    }

    /// Checks `tool` against every rule.
    pub fn check(&self, tool: &ToolSpec) -> Result<(), DenyReason> {
        if self.denied.contains(&tool.id) {
            return Err(DenyReason::DeniedTool);
        }
        if let Some(h) = &self.hubs {
            if !h.contains(&tool.hub) {
                return Err(DenyReason::HubNotAllowed {
                    hub: tool.hub.clone(),
                });
            }
        }
        self.check_connection(tool)?;
        if let Some(tag) = tool.tags.iter().find(|t| self.is_blocked_tag(t)) {
            return Err(DenyReason::BlockedTag { tag: tag.clone() });
        }
        if tool.risk_level > self.rules.max_risk {
            return Err(DenyReason::TooRisky {
                risk: tool.risk_level,
                max: self.rules.max_risk,
            });
        }
        if self.scope_tools.is_some() || self.scope_toolkits.is_some() {
            let by_tool = self
                .scope_tools
                .as_ref()
                .is_some_and(|s| s.contains(&tool.id));
            let by_kit = match (&self.scope_toolkits, &tool.toolkit) {
                (Some(s), Some(t)) => s.contains(&toolkit_key(t)),
                _ => false,
            };
            if !by_tool && !by_kit {
                return Err(DenyReason::OutOfScope);
            }
        }
        Ok(())
    }

    fn check_connection(&self, tool: &ToolSpec) -> Result<(), DenyReason> {
        if !tool.requires_connection {
            return if self.rules.allow_no_auth_tools {
                Ok(())
            } else {
                Err(DenyReason::NoAuthToolsOff)
            };
        }
        match &tool.toolkit {
            Some(t) if self.connected.contains(t) => Ok(()),
            other => Err(DenyReason::NotConnected {
                toolkit: other.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn remote(id: &str, kit: &str) -> ToolSpec {
        let mut t = ToolSpec::new(id, "d", json!({"type": "object"})).in_toolkit(kit);
        t.requires_connection = true;
        t
    }

    fn conn(kit: &str, active: bool) -> Connection {
        Connection {
            toolkit: kit.into(),
            account_id: "ca_1".into(),
            active,
        }
    }

    #[test]
    fn connection_rule() {
        let gate = ToolGate::new(
            GateRules::default(),
            Connected::from_connections(&[conn("GitHub", true), conn("slack", false)]),
        );
        assert_eq!(gate.check(&remote("GITHUB_LIST", "github")), Ok(()));
        assert_eq!(
            gate.check(&remote("SLACK_LIST", "slack")),
            Err(DenyReason::NotConnected {
                toolkit: Some("slack".into())
            })
        );
        let local = ToolSpec::new("notes.create", "d", json!({}));
        assert_eq!(gate.check(&local), Ok(()));
        let strict = ToolGate::new(
            GateRules {
                allow_no_auth_tools: false,
                ..Default::default()
            },
            Connected::Unrestricted,
        );
        assert_eq!(strict.check(&local), Err(DenyReason::NoAuthToolsOff));
    }

    #[test]
    fn tags_risk_and_scope() {
        let gate = ToolGate::new(GateRules::default(), Connected::Unrestricted);
        let del = remote("X_DELETE", "x").with_tags(["write", "Delete"]);
        assert_eq!(
            gate.check(&del),
            Err(DenyReason::BlockedTag {
                tag: "Delete".into()
            })
        );
        let risky = remote("X_SEND", "x").with_risk(RiskLevel::High);
        assert!(matches!(
            gate.check(&risky),
            Err(DenyReason::TooRisky { .. })
        ));
        let scoped = ToolGate::new(
            GateRules::default()
                .only_toolkits(["Google Sheets"])
                .only_tools(["X_ONE"]),
            Connected::Unrestricted,
        );
        assert_eq!(scoped.check(&remote("S_READ", "googlesheets")), Ok(()));
        assert_eq!(scoped.check(&remote("X_ONE", "x")), Ok(()));
        assert_eq!(
            scoped.check(&remote("X_TWO", "x")),
            Err(DenyReason::OutOfScope)
        );
    }

    #[test]
    fn denied_tools_and_hubs() {
        let gate = ToolGate::new(
            GateRules {
                denied_tools: vec!["X_ONE".into()],
                hubs: Some(vec!["local".into()]),
                ..Default::default()
            },
            Connected::Unrestricted,
        );
        assert_eq!(
            gate.check(&remote("X_ONE", "x")),
            Err(DenyReason::DeniedTool)
        );
        assert!(matches!(
            gate.check(&remote("X_TWO", "x").on_hub("composio")),
            Err(DenyReason::HubNotAllowed { .. })
        ));
    }
}
