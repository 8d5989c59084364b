//! Redaction of secrets from event payloads and logs.

use regex::{Regex, RegexSet};
use serde_json::Value;

/// Replacement text for redacted values.
pub const REDACTED: &str = "[REDACTED]";

/// Removes secrets from JSON payloads: values under sensitive keys, strings matching secret
/// patterns, and configured literal secret values.
#[derive(Debug, Clone)]
pub struct Redactor {
    keys: Vec<String>,
    key_suffixes: Vec<String>,
    patterns: Vec<Regex>,
    set: RegexSet,
    literals: Vec<String>,
    min_literal: usize,
    min_pattern: usize,
}

const DEFAULT_KEYS: &[&str] = &[
    "api_key",
    "apikey",
    "authorization",
    "password",
    "passwd",
    "secret",
    "token",
    "access_token",
    "refresh_token",
    "client_secret",
    "private_key",
    "x_api_key",
    "cookie",
    "set_cookie",
];

const DEFAULT_SUFFIXES: &[&str] = &["_api_key", "_secret", "_password", "_token"];

const DEFAULT_PATTERNS: &[&str] = &[
    r"sk-[A-Za-z0-9_\-]{16,}",
    r"(?i)bearer\s+[A-Za-z0-9._~+/=\-]{8,}",
    r"AKIA[0-9A-Z]{16}",
    r"gh[pousr]_[A-Za-z0-9]{20,}",
    r"xox[abprs]-[A-Za-z0-9\-]{10,}",
];

impl Default for Redactor {
    fn default() -> Self {
        let mut r = Redactor {
            keys: DEFAULT_KEYS.iter().map(|s| s.to_string()).collect(),
            key_suffixes: DEFAULT_SUFFIXES.iter().map(|s| s.to_string()).collect(),
            patterns: Vec::new(),
            set: RegexSet::empty(),
            literals: Vec::new(),
            min_literal: usize::MAX,
            min_pattern: MIN_PATTERN_LEN,
        };
        for p in DEFAULT_PATTERNS {
            if let Ok(re) = Regex::new(p) {
                r.patterns.push(re);
            }
        }
        r.rebuild();
        r
    }
}

fn normalize_key(k: &str) -> String {
    k.to_ascii_lowercase().replace('-', "_")
}

/// Shortest string any default pattern can match; shorter strings skip the regex scan.
const MIN_PATTERN_LEN: usize = 10;

fn same_key_byte(a: u8, b: u8) -> bool {
    let norm = |c: u8| {
        if c == b'-' {
            b'_'
        } else {
            c.to_ascii_lowercase()
        }
    };
    norm(a) == norm(b)
}

/// `key` equals `norm` (already normalized) ignoring ASCII case and `-`/`_`.
fn key_eq(key: &str, norm: &str) -> bool {
    key.len() == norm.len()
        && key
            .bytes()
            .zip(norm.bytes())
            .all(|(a, b)| same_key_byte(a, b))
}

/// `key` ends with `norm` ignoring ASCII case and `-`/`_`.
fn key_ends_with(key: &str, norm: &str) -> bool {
    key.len() >= norm.len()
        && key.as_bytes()[key.len() - norm.len()..]
            .iter()
            .zip(norm.bytes())
            .all(|(a, b)| same_key_byte(*a, b))
}

impl Redactor {
    /// A redactor with no rules.
    pub fn none() -> Self {
        Redactor {
            keys: Vec::new(),
            key_suffixes: Vec::new(),
            patterns: Vec::new(),
            set: RegexSet::empty(),
            literals: Vec::new(),
            min_literal: usize::MAX,
            min_pattern: usize::MAX,
        }
    }

    fn rebuild(&mut self) {
        self.set = RegexSet::new(self.patterns.iter().map(|r| r.as_str()))
            .unwrap_or_else(|_| RegexSet::empty());
    }

    /// Also redacts values under `key` (case-insensitive, `-` = `_`).
    pub fn key(mut self, key: &str) -> Self {
        self.keys.push(normalize_key(key));
        self
    }

    /// Also redacts substrings matching `pattern`.
    pub fn pattern(mut self, pattern: &str) -> crate::Result<Self> {
        let re = Regex::new(pattern)
            .map_err(|e| crate::Error::InvalidInput(format!("redaction pattern: {e}")))?;
        self.patterns.push(re);
        // A custom pattern may match short strings: scan every string from now on.
        self.min_pattern = 0;
        self.rebuild();
        Ok(self)
    }

    /// Also redacts this exact secret value wherever it appears (e.g. an API key).
    pub fn secret(mut self, value: impl Into<String>) -> Self {
        let v = value.into();
        if v.len() >= 4 {
            self.min_literal = self.min_literal.min(v.len());
            self.literals.push(v);
        }
        self
    }

    fn sensitive_key(&self, key: &str) -> bool {
        if self.keys.is_empty() && self.key_suffixes.is_empty() {
            return false;
        }
        self.keys.iter().any(|s| key_eq(key, s))
            || self.key_suffixes.iter().any(|s| key_ends_with(key, s))
    }

    /// Redacts a string.
    pub fn redact_str(&self, s: &str) -> Option<String> {
        let literal =
            s.len() >= self.min_literal && self.literals.iter().any(|l| s.contains(l.as_str()));
        let patterned = s.len() >= self.min_pattern && self.set.is_match(s);
        if !literal && !patterned {
            return None;
        }
        let mut out = s.to_string();
        for l in &self.literals {
            if out.contains(l.as_str()) {
                out = out.replace(l.as_str(), REDACTED);
            }
        }
        for re in &self.patterns {
            if re.is_match(&out) {
                out = re.replace_all(&out, REDACTED).into_owned();
            }
        }
        Some(out)
    }

    /// Redacts a JSON value in place.
    pub fn redact(&self, v: &mut Value) {
        match v {
            Value::String(s) => {
                if let Some(r) = self.redact_str(s) {
                    *s = r;
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.redact(x)),
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if self.sensitive_key(k) && !x.is_null() {
                        *x = Value::String(REDACTED.into());
                    } else {
                        self.redact(x);
                    }
                }
            }
            _ => {}
        }
    }

    /// Redacts secret values in place: strings matching a secret pattern or holding a
    /// configured literal secret. Unlike [`Redactor::redact`], values under sensitive key
    /// names are kept, so data whose shape matters (step rows, effect results) stays usable.
    pub fn redact_strings(&self, v: &mut Value) {
        match v {
            Value::String(s) => {
                if let Some(r) = self.redact_str(s) {
                    *s = r;
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.redact_strings(x)),
            Value::Object(m) => m.values_mut().for_each(|x| self.redact_strings(x)),
            _ => {}
        }
    }

    /// Whether [`Redactor::redact_strings`] would change `v` (a scan without copying).
    pub fn has_secret_strings(&self, v: &Value) -> bool {
        match v {
            Value::String(s) => self.redact_str(s).is_some(),
            Value::Array(a) => a.iter().any(|x| self.has_secret_strings(x)),
            Value::Object(m) => m.values().any(|x| self.has_secret_strings(x)),
            _ => false,
        }
    }

    /// A redacted copy.
    pub fn redacted(&self, v: &Value) -> Value {
        let mut c = v.clone();
        self.redact(&mut c);
        c
    }
}
