//! Policy engine v1: rules over field paths, four effects, priorities.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;
use crate::run::{Budget, RunMode, Subject};

/// Where a policy is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyAction {
    /// Before a run is created.
    RunStart,
    /// Before a tool executes.
    ToolCall,
    /// Before an agent runs.
    AgentCall,
    /// Before a tool is shown to a model (tool search gate).
    ToolExposure,
}

impl PolicyAction {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyAction::RunStart => "run_start",
            PolicyAction::ToolCall => "tool_call",
            PolicyAction::AgentCall => "agent_call",
            PolicyAction::ToolExposure => "tool_exposure",
        }
    }
}

/// What a policy does when its rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Permit.
    Allow,
    /// Change control fields only (mode, limits, flags).
    Modify,
    /// Pause for human approval.
    RequireApproval,
    /// Block.
    Deny,
}

impl Effect {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Modify => "modify",
            Effect::RequireApproval => "require_approval",
            Effect::Deny => "deny",
        }
    }
}

/// Where a policy applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyScope {
    /// Everywhere.
    #[default]
    Global,
    /// One tenant (`scope_id`).
    Tenant,
    /// One app (`scope_id`).
    App,
    /// One tool (`scope_id`).
    Tool,
    /// One workflow (`scope_id`).
    Workflow,
    /// One agent (`scope_id`).
    Agent,
}

/// Comparison operators of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    /// Equal.
    Equals,
    /// Not equal.
    NotEquals,
    /// Field value is one of `value` (an array).
    In,
    /// Field value is none of `value`.
    NotIn,
    /// Field (string or array) contains `value`.
    Contains,
    /// Greater than (numbers; risk levels compare low < medium < high).
    Gt,
    /// Greater or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less or equal.
    Lte,
    /// Field is present (`value: false` tests absence).
    Exists,
}

/// One test of a field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// Dotted path, e.g. `tool.risk_level`, `run.mode`, `subject.role`.
    pub field: String,
    /// Operator.
    pub operator: Operator,
    /// Operand.
    #[serde(default)]
    pub value: Value,
}

/// How conditions combine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Logic {
    /// All must hold.
    #[default]
    And,
    /// One must hold.
    Or,
}

/// A condition or a nested group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RuleNode {
    /// Nested group.
    Group(RuleExpr),
    /// Leaf test.
    Condition(Condition),
}

/// A rule: conditions joined by AND/OR; an empty rule always matches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleExpr {
    /// Conditions and groups.
    #[serde(default)]
    pub conditions: Vec<RuleNode>,
    /// Combination.
    #[serde(default)]
    pub logic: Logic,
}

/// Control fields a `modify` policy may change (never business data).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ControlChanges {
    /// Force the run mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RunMode>,
    /// Tighten budget fields (the smaller of the two wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// Flags for the host.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub flags: serde_json::Map<String, Value>,
}

/// A stored policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Scope.
    #[serde(default)]
    pub scope: PolicyScope,
    /// The tenant/app/tool/workflow/agent id the scope names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_id: Option<String>,
    /// Check points it applies to; empty = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<PolicyAction>,
    /// The rule.
    #[serde(default)]
    pub rule_expr: RuleExpr,
    /// Effect when it matches.
    pub effect: Effect,
    /// For `modify`: what changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modify: Option<ControlChanges>,
    /// Higher runs first.
    #[serde(default)]
    pub priority: i32,
    /// Disabled policies are ignored.
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

/// The resource a check is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyResource {
    /// `workflow`, `tool` or `agent`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its id.
    pub id: String,
}

/// A question to the policy engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRequest {
    /// Check point.
    pub action: PolicyAction,
    /// Who.
    pub subject: Subject,
    /// What.
    pub resource: PolicyResource,
    /// Fields rules may read besides `subject`, `action` and `resource`:
    /// `run.{id,mode,workflow_id}`, `tool.{id,risk_level,tags,side_effects,toolkit}`,
    /// `agent.{id}`, `input` ...
    pub context: Value,
}

impl PolicyRequest {
    /// The document rule field paths resolve against.
    pub fn document(&self) -> Value {
        let mut doc = match &self.context {
            Value::Object(m) => Value::Object(m.clone()),
            _ => Value::Object(Default::default()),
        };
        doc["subject"] = serde_json::to_value(&self.subject).unwrap_or_default();
        doc["action"] = self.action.as_str().into();
        doc["resource"] = serde_json::to_value(&self.resource).unwrap_or_default();
        doc
    }
}

/// The engine's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Effective effect (`modify` never stands alone: it is reported as `allow` + changes).
    pub effect: Effect,
    /// The policy that decided, if any matched.
    pub policy_id: Option<String>,
    /// Why.
    pub reason: String,
    /// Accumulated control changes of matching `modify` policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<ControlChanges>,
    /// Ids of every matching policy.
    #[serde(default)]
    pub matched: Vec<String>,
}

impl Decision {
    /// Allow without a matching policy.
    pub fn allow_default() -> Self {
        Decision {
            effect: Effect::Allow,
            policy_id: None,
            reason: "no policy matched".into(),
            changes: None,
            matched: Vec::new(),
        }
    }
}

/// Decides allow / deny / require_approval / modify.
#[async_trait]
pub trait PolicyEngine: Send + Sync {
    /// Evaluates `request`.
    async fn evaluate(&self, request: &PolicyRequest) -> Result<Decision>;
}

/// Where a [`RulePolicyEngine`] gets its policies.
#[async_trait]
pub trait PolicySource: Send + Sync {
    /// Every enabled policy.
    async fn policies(&self) -> Result<Arc<Vec<Policy>>>;
}

/// A fixed policy list.
pub struct StaticPolicies(pub Arc<Vec<Policy>>);

#[async_trait]
impl PolicySource for StaticPolicies {
    async fn policies(&self) -> Result<Arc<Vec<Policy>>> {
        Ok(self.0.clone())
    }
}

/// The rule engine of v1.
///
/// Matching policies are considered by priority (highest first). The first matching
/// `allow`/`deny`/`require_approval` decides; at equal priority the most restrictive wins
/// (deny > require_approval > allow). `modify` policies at or above the deciding priority
/// contribute control changes. Without a match the default effect applies (allow).
pub struct RulePolicyEngine {
    source: Arc<dyn PolicySource>,
    default_effect: Effect,
}

impl RulePolicyEngine {
    /// An engine over `source`.
    pub fn new(source: Arc<dyn PolicySource>) -> Self {
        RulePolicyEngine {
            source,
            default_effect: Effect::Allow,
        }
    }

    /// An engine over a fixed list.
    pub fn with_policies(policies: Vec<Policy>) -> Self {
        Self::new(Arc::new(StaticPolicies(Arc::new(policies))))
    }

    /// Sets the effect used when no policy matches (`Allow` or `Deny`).
    pub fn default_effect(mut self, effect: Effect) -> Self {
        self.default_effect = effect;
        self
    }

    /// Pure evaluation over `policies` (no I/O).
    pub fn decide(&self, policies: &[Policy], request: &PolicyRequest) -> Decision {
        if policies.is_empty() {
            return Decision {
                effect: self.default_effect,
                ..Decision::allow_default()
            };
        }
        let doc = request.document();
        let mut matching: Vec<&Policy> = policies
            .iter()
            .filter(|p| p.enabled && applies(p, request) && rule_matches(&p.rule_expr, &doc))
            .collect();
        matching.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(b.effect.cmp(&a.effect))
                .then(a.id.cmp(&b.id))
        });
        let matched: Vec<String> = matching.iter().map(|p| p.id.clone()).collect();
        let decider = matching.iter().find(|p| p.effect != Effect::Modify);
        let floor = decider.map(|p| p.priority).unwrap_or(i32::MIN);
        let mut changes: Option<ControlChanges> = None;
        for p in matching
            .iter()
            .filter(|p| p.effect == Effect::Modify && p.priority >= floor)
        {
            if let Some(c) = &p.modify {
                changes = Some(merge_changes(changes.take().unwrap_or_default(), c));
            }
        }
        match decider {
            Some(p) => Decision {
                effect: p.effect,
                policy_id: Some(p.id.clone()),
                reason: if p.description.is_empty() {
                    format!("policy `{}` ({})", p.name, p.effect.as_str())
                } else {
                    p.description.clone()
                },
                changes,
                matched,
            },
            None => Decision {
                effect: self.default_effect,
                policy_id: None,
                reason: if changes.is_some() {
                    "modified by policy".into()
                } else {
                    "no policy matched".into()
                },
                changes,
                matched,
            },
        }
    }
}

#[async_trait]
impl PolicyEngine for RulePolicyEngine {
    async fn evaluate(&self, request: &PolicyRequest) -> Result<Decision> {
        let policies = self.source.policies().await?;
        Ok(self.decide(&policies, request))
    }
}

fn merge_changes(mut acc: ControlChanges, c: &ControlChanges) -> ControlChanges {
    if acc.mode.is_none() {
        acc.mode = c.mode;
    }
    if let Some(b) = c.budget {
        let cur = acc.budget.unwrap_or_default();
        acc.budget = Some(Budget {
            cost_limit_cents: min_opt(cur.cost_limit_cents, b.cost_limit_cents),
            llm_calls_limit: min_opt(cur.llm_calls_limit, b.llm_calls_limit),
            latency_slo_ms: min_opt(cur.latency_slo_ms, b.latency_slo_ms),
        });
    }
    for (k, v) in &c.flags {
        acc.flags.entry(k.clone()).or_insert_with(|| v.clone());
    }
    acc
}

/// The smaller of two optional limits (`None` = unlimited).
pub fn min_opt<T: PartialOrd + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y < x { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

fn applies(p: &Policy, r: &PolicyRequest) -> bool {
    if !p.actions.is_empty() && !p.actions.contains(&r.action) {
        return false;
    }
    let scoped = |id: Option<&str>| match (&p.scope_id, id) {
        (None, _) => true,
        (Some(want), Some(have)) => want == have,
        (Some(_), None) => false,
    };
    match p.scope {
        PolicyScope::Global => true,
        PolicyScope::Tenant => scoped(Some(&r.subject.tenant_id)),
        PolicyScope::App => scoped(r.subject.app_id.as_deref()),
        PolicyScope::Tool => r.resource.kind == "tool" && scoped(Some(&r.resource.id)),
        PolicyScope::Agent => r.resource.kind == "agent" && scoped(Some(&r.resource.id)),
        PolicyScope::Workflow => {
            let wf = r
                .context
                .pointer("/run/workflow_id")
                .and_then(Value::as_str);
            let wf = if r.resource.kind == "workflow" {
                Some(r.resource.id.as_str())
            } else {
                wf
            };
            scoped(wf)
        }
    }
}

/// Evaluates a rule against a document.
pub fn rule_matches(rule: &RuleExpr, doc: &Value) -> bool {
    let mut results = rule.conditions.iter().map(|c| match c {
        RuleNode::Group(g) => rule_matches(g, doc),
        RuleNode::Condition(c) => condition_matches(c, doc),
    });
    match rule.logic {
        Logic::And => results.all(|b| b),
        Logic::Or => rule.conditions.is_empty() || results.any(|b| b),
    }
}

/// Resolves a dotted path (`tool.risk_level`, `tags.0`) in `doc`.
pub fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = doc;
    for part in path.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    if cur.is_null() {
        None
    } else {
        Some(cur)
    }
}

fn condition_matches(c: &Condition, doc: &Value) -> bool {
    let field = lookup(doc, &c.field);
    match c.operator {
        Operator::Exists => field.is_some() != (c.value == Value::Bool(false)),
        Operator::Equals => field.is_some_and(|f| loosely_equal(f, &c.value)),
        Operator::NotEquals => !field.is_some_and(|f| loosely_equal(f, &c.value)),
        Operator::In => field.is_some_and(|f| one_of(f, &c.value)),
        Operator::NotIn => !field.is_some_and(|f| one_of(f, &c.value)),
        Operator::Contains => field.is_some_and(|f| match f {
            Value::Array(a) => a.iter().any(|x| loosely_equal(x, &c.value)),
            Value::String(s) => c.value.as_str().is_some_and(|v| s.contains(v)),
            _ => false,
        }),
        Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte => {
            let Some(f) = field else { return false };
            let Some(ord) = compare(f, &c.value) else {
                return false;
            };
            match c.operator {
                Operator::Gt => ord.is_gt(),
                Operator::Gte => ord.is_ge(),
                Operator::Lt => ord.is_lt(),
                _ => ord.is_le(),
            }
        }
    }
}

fn one_of(f: &Value, set: &Value) -> bool {
    match set {
        Value::Array(a) => match f {
            Value::Array(fs) => fs.iter().any(|x| a.iter().any(|y| loosely_equal(x, y))),
            _ => a.iter().any(|y| loosely_equal(f, y)),
        },
        other => loosely_equal(f, other),
    }
}

fn loosely_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::String(x), Value::String(y)) => x.eq_ignore_ascii_case(y),
        _ => a == b,
    }
}

fn rank(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => crate::tool::RiskLevel::parse(&s.to_ascii_lowercase())
            .map(|r| r as u8 as f64)
            .or_else(|| s.parse().ok()),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    rank(a)?.partial_cmp(&rank(b)?)
}
