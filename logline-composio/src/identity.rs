//! Which Composio user a run's subject is: connections and executions are per Composio
//! user, so two tenants' users must never map to the same one.

use std::fmt;
use std::sync::Arc;

use logline_core::run::Subject;

/// A host mapping from a subject to a Composio user id (`None` = no user).
pub type UserIdMapping = Arc<dyn Fn(&Subject) -> Option<String> + Send + Sync>;

/// How a run's subject becomes the Composio `user_id` of its connected-account lookups and
/// executions.
#[derive(Clone, Default)]
pub enum ComposioUserIds {
    /// `{tenant}:{user}`, the tenant with `%`, `:` and `,` percent-escaped and the user with
    /// `%` and `,` escaped: distinct (tenant, user) pairs never share a Composio user. The
    /// default.
    #[default]
    TenantQualified,
    /// The user id alone: only for single-tenant hosts whose Composio users predate tenants.
    UserOnly,
    /// The host's own mapping; it must give distinct tenants distinct ids.
    Custom(UserIdMapping),
}

impl fmt::Debug for ComposioUserIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComposioUserIds::TenantQualified => f.write_str("TenantQualified"),
            ComposioUserIds::UserOnly => f.write_str("UserOnly"),
            ComposioUserIds::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl ComposioUserIds {
    /// The Composio user id of `subject`; `None` when the subject has no user.
    pub fn of(&self, subject: &Subject) -> Option<String> {
        match self {
            ComposioUserIds::TenantQualified => {
                let user = subject.user_id.as_deref()?;
                Some(format!(
                    "{}:{}",
                    escape(&subject.tenant_id, &['%', ':', ',']),
                    escape(user, &['%', ','])
                ))
            }
            ComposioUserIds::UserOnly => subject.user_id.clone(),
            ComposioUserIds::Custom(f) => f(subject),
        }
    }
}

/// `s` with each of `special` as `%XX` (uppercase hex).
fn escape(s: &str, special: &[char]) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if special.contains(&c) {
            out.push_str(&format!("%{:02X}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qualified(tenant: &str, user: &str) -> Option<String> {
        ComposioUserIds::TenantQualified.of(&Subject::tenant(tenant).with_user(user))
    }

    #[test]
    fn tenants_never_share_a_user() {
        assert_eq!(qualified("acme", "alice").as_deref(), Some("acme:alice"));
        assert_ne!(qualified("acme", "alice"), qualified("globex", "alice"));
        assert_ne!(qualified("a:b", "c"), qualified("a", "b:c"));
        assert_eq!(qualified("a:b", "c").as_deref(), Some("a%3Ab:c"));
        assert_ne!(qualified("a%3Ab", "c"), qualified("a:b", "c"));
        assert_eq!(qualified("t", "x,y").as_deref(), Some("t:x%2Cy"));
        assert_eq!(
            ComposioUserIds::TenantQualified.of(&Subject::tenant("acme")),
            None
        );
    }

    #[test]
    fn other_mappings() {
        let s = Subject::tenant("acme").with_user("alice");
        assert_eq!(ComposioUserIds::UserOnly.of(&s).as_deref(), Some("alice"));
        let custom = ComposioUserIds::Custom(Arc::new(|s: &Subject| {
            s.user_id.as_ref().map(|u| format!("{u}@{}", s.tenant_id))
        }));
        assert_eq!(custom.of(&s).as_deref(), Some("alice@acme"));
    }
}
