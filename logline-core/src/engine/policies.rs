//! Policies read from the store, cached briefly.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::lock;
use crate::error::Result;
use crate::policy::{Policy, PolicySource};
use crate::store::Store;

/// A [`PolicySource`] over any [`Store`], caching the policy list for `ttl`
/// (and until [`StorePolicySource::invalidate`]).
pub struct StorePolicySource {
    store: Arc<dyn Store>,
    ttl: Duration,
    cache: Mutex<Option<(Instant, Arc<Vec<Policy>>)>>,
}

impl StorePolicySource {
    /// A source over `store` with a 1 s cache.
    pub fn new(store: Arc<dyn Store>) -> Self {
        StorePolicySource {
            store,
            ttl: Duration::from_secs(1),
            cache: Mutex::new(None),
        }
    }

    /// Sets the cache lifetime (zero disables caching).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Drops the cached list; the next evaluation reads the store.
    pub fn invalidate(&self) {
        *lock(&self.cache) = None;
    }
}

#[async_trait]
impl PolicySource for StorePolicySource {
    async fn policies(&self) -> Result<Arc<Vec<Policy>>> {
        if let Some((at, list)) = lock(&self.cache).as_ref() {
            if at.elapsed() < self.ttl {
                return Ok(list.clone());
            }
        }
        let list: Arc<Vec<Policy>> = Arc::new(
            self.store
                .list_policies()
                .await?
                .into_iter()
                .filter(|p| p.enabled)
                .collect(),
        );
        *lock(&self.cache) = Some((Instant::now(), list.clone()));
        Ok(list)
    }
}
