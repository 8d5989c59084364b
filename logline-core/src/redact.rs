//! Redaction of secrets from event payloads and logs.

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use regex::{Regex, RegexSet};
use serde_json::Value;

/// Replacement text for redacted values.
pub const REDACTED: &str = "[REDACTED]";

/// Removes secrets from JSON payloads: values under sensitive keys, strings matching secret
/// patterns, and configured literal secret values.
#[derive(Debug, Clone)]
pub struct Redactor {
    /// Sensitive keys, normalized ([`normalize_key`]), by length ([`key_bucket`]).
    keys: Vec<Vec<String>>,
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

/// What every match of a default pattern holds (ignoring ASCII case).
const DEFAULT_PATTERN_WORDS: &[&str] = &[
    "sk-", "bearer", "akia", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "xox",
];

/// [`DEFAULT_PATTERN_WORDS`] as one automaton, built once for every redactor.
static PATTERN_WORDS: LazyLock<Option<AhoCorasick>> =
    LazyLock::new(|| AhoCorasick::new(DEFAULT_PATTERN_WORDS).ok());

impl Default for Redactor {
    fn default() -> Self {
        let mut r = Redactor {
            keys: Vec::new(),
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
        DEFAULT_KEYS.iter().fold(r, |r, k| r.key(k))
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

/// Keys at least this long share the last bucket of [`Redactor`]'s keys.
const LONG_KEY: usize = 64;

/// The bucket of [`Redactor`]'s keys that holds the keys as long as `key`.
fn key_bucket(key: &str) -> usize {
    key.len().min(LONG_KEY)
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
        let key = normalize_key(key);
        let bucket = key_bucket(&key);
        if self.keys.len() <= bucket {
            self.keys.resize_with(bucket + 1, Vec::new);
        }
        self.keys[bucket].push(key);
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
        let bucket = self
            .keys
            .get(key_bucket(key))
            .map_or(&[][..], Vec::as_slice);
        bucket.iter().any(|s| key_eq(key, s))
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

    /// Whether [`Redactor::redact`] leaves the JSON value serialized as `text` unchanged,
    /// judged on the text alone: `false` may be a false alarm, never a miss. A text with
    /// escapes and a redactor with a custom pattern (which may be anchored to a string's
    /// ends) are never judged this way.
    ///
    /// Without escapes every quote of the text opens or closes a string, so each string is
    /// judged as [`Redactor::redact`] would: a key by the sensitive-key rules, a value by the
    /// words every secret pattern's match holds.
    pub fn leaves_json_text(&self, text: &str) -> bool {
        // A custom pattern (it sets `min_pattern` to 0) may be anchored to a string's ends.
        if self.min_pattern == 0 || memchr::memchr(b'\\', text.as_bytes()).is_some() {
            return false;
        }
        if text.len() >= self.min_literal && self.literals.iter().any(|l| text.contains(l.as_str()))
        {
            return false;
        }
        // Quotes pair up: each opens a string, the next closes it.
        let mut open = None;
        for at in memchr::memchr_iter(b'"', text.as_bytes()) {
            let Some(start) = open.take() else {
                open = Some(at + 1);
                continue;
            };
            let string = &text[start..at];
            let judged_safe = if text.as_bytes().get(at + 1) == Some(&b':') {
                !self.sensitive_key(string)
            } else {
                !self.may_match_pattern(string)
            };
            if !judged_safe {
                return false;
            }
        }
        open.is_none()
    }

    /// Whether a secret pattern may match the string value `s` (a false alarm at worst).
    fn may_match_pattern(&self, s: &str) -> bool {
        if s.len() < self.min_pattern || self.patterns.is_empty() {
            return false;
        }
        let Some(words) = PATTERN_WORDS.as_ref() else {
            return true;
        };
        // Words are matched in lowercase: a case-sensitive search is several times faster,
        // and a short string is lowered on the stack.
        let mut short = [0u8; 256];
        match short.get_mut(..s.len()) {
            Some(lower) => {
                lower.copy_from_slice(s.as_bytes());
                lower.make_ascii_lowercase();
                words.is_match(&*lower)
            }
            None => words.is_match(&s.to_ascii_lowercase()),
        }
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn redactors() -> [Redactor; 3] {
        [
            Redactor::default(),
            Redactor::default()
                .secret("hunter22")
                .key("Session-Id")
                .key(&"Long-Key-".repeat(9)),
            Redactor::none().secret("hunter22"),
        ]
    }

    #[test]
    fn keys_are_matched_exactly_at_any_length() {
        let long = "Long-Key-".repeat(9);
        let r = Redactor::default().key(&long).key(&long[..64]).key("ab");
        for key in [
            long.to_uppercase(),
            long.replace('-', "_"),
            long[..64].to_string(),
            "AB".into(),
            "x-api-key".into(),
        ] {
            assert!(r.sensitive_key(&key), "{key}");
        }
        for key in [
            &long[..70],
            &format!("{long}x"),
            &long[..63],
            "a",
            "abc",
            "api",
        ] {
            assert!(!r.sensitive_key(key), "{key}");
        }
        let text = format!(r#"{{"{long}":"v","n":1}}"#);
        assert!(!r.leaves_json_text(&text));
        assert!(r.leaves_json_text(&text.replace(&long, &long[..70])));
    }

    #[test]
    fn plain_text_is_left_and_anything_redactable_is_not() {
        let r = Redactor::default().secret("hunter22");
        assert!(r.leaves_json_text(r#"{"node_id":"n1","index":3}"#));
        for text in [
            r#"{"Access-Token":"x"}"#,
            r#"{"note":"sk-abcdefghijklmnopqrstu"}"#,
            r#"{"note":"my hunter22"}"#,
            r#"{"note":"Bearer abcdefghijk"}"#,
            r#"{"note":"a\"b"}"#,
        ] {
            assert!(!r.leaves_json_text(text), "{text}");
        }
        // Words of sensitive keys in values, and keys that only hold such a word, are judged
        // as `redact` judges them.
        for text in [
            r#"{"usage":{"input_tokens":12,"output_tokens":3},"note":"a secret token"}"#,
            r#"{"note":"through the high ghost town","xox":"xo"}"#,
        ] {
            assert!(r.leaves_json_text(text), "{text}");
        }
        for text in [
            r#"{"usage":{"refresh_token":null}}"#,
            r#"[{"a":"ghp_abcdefghijklmnopqrstuvwxyz"}]"#,
            r#"{"note":"xoxb-1234567890ab"}"#,
        ] {
            assert!(!r.leaves_json_text(text), "{text}");
        }
        let custom = Redactor::default().pattern("^n1$").unwrap();
        assert!(!custom.leaves_json_text(r#"{"node_id":"n1"}"#));
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            prop::sample::select(vec![
                "token",
                "API-Key",
                "x_api_key",
                "node_id",
                "my_secret",
                "input_tokens",
                "Refresh-Token",
                "ghp_key"
            ])
            .prop_map(String::from),
            prop::sample::select(vec!["AUTHORIZATION", "session_id", "Set-Cookie", "index"])
                .prop_map(String::from),
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[a-z]{0,12}",
            "sk-[A-Za-z0-9]{16,20}",
            "(Bearer|bearer)[ \t\n]{1,2}[A-Za-z0-9]{8,10}",
            "[a-z ]{0,4}hunter22[a-z ]{0,4}",
            "AKIA[0-9A-Z]{16}",
            "(gh|GH)[pousr]_[A-Za-z0-9]{18,22}",
            "[a-z ]{0,6}(token|secret|gh|xox)[a-z_ ]{0,6}",
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::from),
            text().prop_map(Value::String)
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((key(), inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// A text the redactor leaves belongs to a value that redacting would not change.
        #[test]
        fn a_text_left_as_is_never_hides_a_secret(v in value()) {
            let text = v.to_string();
            for r in redactors() {
                if r.leaves_json_text(&text) {
                    prop_assert_eq!(r.redacted(&v), v.clone(), "{}", text);
                }
            }
        }
    }

    #[test]
    fn a_value_without_secrets_is_judged_by_text() {
        let v = json!({"node_id": "n1", "next": "n2", "index": 1});
        assert!(redactors()
            .iter()
            .all(|r| r.leaves_json_text(&v.to_string())));
    }
}
