//! Access tokens (JWT, HS256), refresh tokens and API keys (random, stored hashed).

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::store::{Role, User};

/// Prefix of refresh tokens.
pub const REFRESH_PREFIX: &str = "llr_";
/// Prefix of API keys.
pub const API_KEY_PREFIX: &str = "llk_";

/// Claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: Uuid,
    /// Tenant.
    pub tid: String,
    /// Role.
    pub role: Role,
    /// Session the token belongs to.
    pub sid: Uuid,
    /// Issued at (seconds).
    pub iat: i64,
    /// Expires (seconds).
    pub exp: i64,
}

/// Signs and checks access tokens.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// Keys from `secret`; an empty secret gets a random one.
    pub fn new(secret: &str, ttl: Duration) -> Self {
        let secret = if secret.is_empty() {
            random_bytes(32)
        } else {
            secret.as_bytes().to_vec()
        };
        JwtKeys {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            ttl,
        }
    }

    /// A token for `user` in session `sid`, with its lifetime in seconds.
    pub fn issue(&self, user: &User, sid: Uuid) -> logline_core::Result<(String, u64)> {
        let now = Utc::now().timestamp();
        let ttl = self.ttl.as_secs();
        let claims = Claims {
            sub: user.id,
            tid: user.tenant_id.clone(),
            role: user.role,
            sid,
            iat: now,
            exp: now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| logline_core::Error::Internal(format!("token signing: {e}")))?;
        Ok((token, ttl))
    }

    /// The claims of a valid, unexpired token.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .ok()
            .map(|d| d.claims)
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    b
}

/// A fresh secret with `prefix` (256 random bits).
pub fn new_secret(prefix: &str) -> String {
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random_bytes(32)))
}

/// SHA-256 (hex) of a token: how refresh tokens and API keys are stored. The secrets are
/// 256 random bits, so a fast hash is enough.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            id: Uuid::new_v4(),
            email: "a@b.c".into(),
            password_hash: String::new(),
            name: None,
            role: Role::Developer,
            tenant_id: "t1".into(),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn a_token_verifies_with_its_keys_only() {
        let keys = JwtKeys::new("secret-one", Duration::from_secs(60));
        let other = JwtKeys::new("secret-two", Duration::from_secs(60));
        let u = user();
        let sid = Uuid::new_v4();
        let (token, ttl) = keys.issue(&u, sid).unwrap();
        assert_eq!(ttl, 60);
        let claims = keys.verify(&token).unwrap();
        assert_eq!(
            (claims.sub, claims.tid.as_str(), claims.role, claims.sid),
            (u.id, "t1", Role::Developer, sid)
        );
        assert!(other.verify(&token).is_none());
        assert!(keys.verify(&format!("{token}x")).is_none());
    }

    #[test]
    fn an_expired_token_is_refused() {
        let keys = JwtKeys::new("s", Duration::from_secs(0));
        let (token, _) = keys.issue(&user(), Uuid::new_v4()).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert!(keys.verify(&token).is_none());
    }

    #[test]
    fn secrets_are_prefixed_and_distinct() {
        let a = new_secret(API_KEY_PREFIX);
        assert!(a.starts_with("llk_") && a.len() > 40);
        assert_ne!(a, new_secret(API_KEY_PREFIX));
        assert_eq!(token_hash(&a).len(), 64);
    }
}
