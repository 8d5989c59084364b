//! A user's connected accounts: only ACTIVE, enabled ones count; cached per user.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logline_core::tool::Connection;

use crate::client::Client;
use crate::error::ComposioError;

/// When fetched, and what.
type Entry = (Instant, Arc<Vec<Connection>>);

/// Per-user cache of connections.
#[derive(Debug, Default)]
pub(crate) struct ConnectionCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl ConnectionCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cached connections of `user_id` younger than `ttl`, else fetched (every page).
    pub(crate) async fn get(
        &self,
        client: &Client,
        user_id: &str,
        ttl: Duration,
    ) -> Result<Arc<Vec<Connection>>, ComposioError> {
        if let Some((at, c)) = self.lock().get(user_id) {
            if at.elapsed() < ttl {
                return Ok(c.clone());
            }
        }
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = client.accounts_page(user_id, cursor.as_deref()).await?;
            out.extend(
                page.items
                    .into_iter()
                    .filter(|a| a.status.eq_ignore_ascii_case("ACTIVE") && !a.is_disabled)
                    .filter(|a| !a.toolkit.slug.is_empty())
                    // Never another user's account, whatever the server's filter did.
                    .filter(|a| a.user_id.as_deref().is_none_or(|u| u == user_id))
                    .map(|a| Connection {
                        toolkit: a.toolkit.slug,
                        account_id: a.id,
                        active: true,
                    }),
            );
            match page.next_cursor {
                Some(c) if !c.is_empty() && Some(&c) != cursor.as_ref() => cursor = Some(c),
                _ => break,
            }
        }
        let conns = Arc::new(out);
        self.lock()
            .insert(user_id.to_string(), (Instant::now(), conns.clone()));
        Ok(conns)
    }

    /// Forgets a user's cached connections (after a 422, or when the host knows they changed).
    pub(crate) fn invalidate(&self, user_id: &str) {
        self.lock().remove(user_id);
    }
}
