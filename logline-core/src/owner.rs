//! [`Owner`]: the tenant and user a stored record belongs to, always taken from the trusted
//! context (a run's subject, an authenticated principal), never from model output.

use serde::{Deserialize, Serialize};

use crate::engine::Principal;
use crate::run::Subject;

/// The tenant and user that own a record (an artifact, a note). Reads and deletes match
/// both: another tenant's, or another user's, record is not found.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Owner {
    /// Tenant.
    pub tenant_id: String,
    /// User; `None` for a service acting for the whole tenant (which then sees only the
    /// records it owns itself, not its users').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

impl Owner {
    /// User `user_id` of `tenant_id` (an empty user id means none).
    pub fn user(tenant_id: impl Into<String>, user_id: impl Into<String>) -> Self {
        let user_id: String = user_id.into();
        Owner {
            tenant_id: tenant_id.into(),
            user_id: (!user_id.is_empty()).then_some(user_id),
        }
    }

    /// The tenant itself, with no user.
    pub fn tenant(tenant_id: impl Into<String>) -> Self {
        Owner {
            tenant_id: tenant_id.into(),
            user_id: None,
        }
    }

    /// The user id as stored in columns that cannot be null: `""` for none.
    pub fn user_key(&self) -> &str {
        self.user_id.as_deref().unwrap_or("")
    }
}

impl From<&Subject> for Owner {
    fn from(s: &Subject) -> Self {
        Owner::user(s.tenant_id.clone(), s.user_id.clone().unwrap_or_default())
    }
}

impl From<&Principal> for Owner {
    fn from(p: &Principal) -> Self {
        Owner::user(p.tenant_id.clone(), p.user_id.clone().unwrap_or_default())
    }
}

/// The current time at microsecond precision, the precision databases keep, so a record
/// reads back equal to what was written.
pub fn now_micros() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}
