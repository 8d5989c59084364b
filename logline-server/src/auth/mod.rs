//! Authentication: passwords, tokens, API keys, and who the caller of a request is.

mod caller;
mod password;
mod tokens;

pub use caller::{authenticate, Caller, CallerAuth, ClientInfo};
pub use password::{decoy_hash, hash_password, verify_password, MIN_PASSWORD_LEN};
pub use tokens::{new_secret, token_hash, Claims, JwtKeys, API_KEY_PREFIX, REFRESH_PREFIX};
