//! The data of agent memory: items, owners, scopes and filters.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Who an item belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerKind {
    /// The run's end user.
    User,
    /// The run's tenant (shared by everything that acts for it).
    Tenant,
    /// The app the run belongs to.
    App,
    /// The agent making the call.
    Agent,
    /// The run itself (scratch memory of one run).
    Run,
}

impl OwnerKind {
    /// Every kind.
    pub const ALL: [OwnerKind; 5] = [
        OwnerKind::User,
        OwnerKind::Tenant,
        OwnerKind::App,
        OwnerKind::Agent,
        OwnerKind::Run,
    ];

    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerKind::User => "user",
            OwnerKind::Tenant => "tenant",
            OwnerKind::App => "app",
            OwnerKind::Agent => "agent",
            OwnerKind::Run => "run",
        }
    }

    /// Parses [`OwnerKind::as_str`] output.
    pub fn parse(s: &str) -> Option<Self> {
        OwnerKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// An owner: its kind and id (a user id, the tenant id, an app id, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Owner {
    /// Kind.
    pub kind: OwnerKind,
    /// Id within the tenant.
    pub id: String,
}

impl Owner {
    /// An owner of `kind` with `id`.
    pub fn new(kind: OwnerKind, id: impl Into<String>) -> Self {
        Owner {
            kind,
            id: id.into(),
        }
    }
}

/// How long an item is meant to live and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryKind {
    /// Working memory of a conversation or task (usually with a TTL).
    ShortTerm,
    /// Facts and documents kept until deleted.
    #[default]
    LongTerm,
    /// Facts about the owner (preferences, profile).
    Profile,
}

impl MemoryKind {
    /// Every kind.
    pub const ALL: [MemoryKind; 3] = [
        MemoryKind::ShortTerm,
        MemoryKind::LongTerm,
        MemoryKind::Profile,
    ];

    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            MemoryKind::ShortTerm => "short_term",
            MemoryKind::LongTerm => "long_term",
            MemoryKind::Profile => "profile",
        }
    }

    /// Parses [`MemoryKind::as_str`] output.
    pub fn parse(s: &str) -> Option<Self> {
        MemoryKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Who may read an item besides its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Only the owner.
    #[default]
    Private,
    /// Every caller of the item's tenant may read it; only the owner deletes it.
    Tenant,
}

impl Visibility {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Tenant => "tenant",
        }
    }

    /// Parses [`Visibility::as_str`] output.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "private" => Some(Visibility::Private),
            "tenant" => Some(Visibility::Tenant),
            _ => None,
        }
    }
}

/// One remembered thing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryItem {
    /// Id.
    pub id: Uuid,
    /// Tenant it belongs to.
    pub tenant_id: String,
    /// Owner within the tenant.
    pub owner: Owner,
    /// Kind.
    pub kind: MemoryKind,
    /// The text.
    pub content: String,
    /// Free metadata (a JSON object); searches filter on it.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Who may read it besides the owner.
    #[serde(default)]
    pub visibility: Visibility,
    /// When it stops existing, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// The content's embedding (empty when not embedded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub embedding: Vec<f32>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last replaced.
    pub updated_at: DateTime<Utc>,
}

impl MemoryItem {
    /// A new private long-term item of `owner` in `tenant_id`, without embedding.
    pub fn new(tenant_id: impl Into<String>, owner: Owner, content: impl Into<String>) -> Self {
        let now = Utc::now();
        MemoryItem {
            id: Uuid::now_v7(),
            tenant_id: tenant_id.into(),
            owner,
            kind: MemoryKind::LongTerm,
            content: content.into(),
            metadata: Map::new(),
            visibility: Visibility::Private,
            expires_at: None,
            embedding: Vec::new(),
            created_at: now,
            updated_at: now,
        }
    }

    /// Whether the item has expired at `now`.
    pub fn expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

/// An item found by a search, with its cosine similarity to the query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredItem {
    /// The item.
    pub item: MemoryItem,
    /// Cosine similarity (higher is closer).
    pub score: f32,
}

/// What a caller may read: one tenant; the items of `owners`, and when `shared` the items of
/// that tenant with [`Visibility::Tenant`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadScope {
    /// Tenant.
    pub tenant_id: String,
    /// Owners whose private items are readable.
    pub owners: Vec<Owner>,
    /// Whether tenant-visible items of other owners are readable too.
    pub shared: bool,
}

impl ReadScope {
    /// Whether the scope may read `item` (tenant, owner or visibility).
    pub fn admits(&self, item: &MemoryItem) -> bool {
        item.tenant_id == self.tenant_id
            && (self.owners.contains(&item.owner)
                || (self.shared && item.visibility == Visibility::Tenant))
    }
}

/// Narrows reads, searches and deletes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemoryFilter {
    /// Only these kinds (all when empty).
    pub kinds: Vec<MemoryKind>,
    /// Only items whose metadata contains these key/value pairs (JSON containment: each
    /// value equals, or for objects and arrays contains, the item's value).
    pub metadata: Map<String, Value>,
}

impl MemoryFilter {
    /// Whether `item` matches.
    pub fn matches(&self, item: &MemoryItem) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&item.kind))
            && self
                .metadata
                .iter()
                .all(|(k, v)| item.metadata.get(k).is_some_and(|have| contains(have, v)))
    }
}

/// JSON containment as PostgreSQL's `jsonb @>` defines it: scalars are equal, an object
/// contains every pair of the other, an array contains every element of the other.
pub(crate) fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w
            .iter()
            .all(|(k, v)| h.get(k).is_some_and(|x| contains(x, v))),
        (Value::Array(h), Value::Array(w)) => w.iter().all(|v| h.iter().any(|x| contains(x, v))),
        (h, w) => h == w,
    }
}
