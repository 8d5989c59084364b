//! NUL characters in stored data.
//!
//! PostgreSQL's `jsonb` and `text` reject U+0000, so tool or model output containing it
//! could not be stored there. Every backend stores such strings (JSON strings, object keys,
//! job payloads and errors) with each NUL replaced by [`NUL_REPLACEMENT`] (U+FFFD), so all
//! backends return the same data and a NUL can never fail a write after a side effect.

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// What a stored NUL becomes: U+FFFD REPLACEMENT CHARACTER.
pub const NUL_REPLACEMENT: char = '\u{FFFD}';

/// `s` with every NUL replaced (borrowed when there is none).
pub fn replace_nul_str(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// Replaces every NUL in the strings and object keys of `v`; returns whether any was found.
pub fn replace_nul(v: &mut Value) -> bool {
    match v {
        Value::String(s) => {
            if let Cow::Owned(clean) = replace_nul_str(s) {
                *s = clean;
                true
            } else {
                false
            }
        }
        Value::Array(items) => items.iter_mut().fold(false, |hit, i| replace_nul(i) | hit),
        Value::Object(map) => {
            let mut hit = false;
            if map.keys().any(|k| k.contains('\0')) {
                let entries = std::mem::take(map);
                for (k, val) in entries {
                    map.insert(replace_nul_str(&k).into_owned(), val);
                }
                hit = true;
            }
            map.values_mut().fold(hit, |hit, i| replace_nul(i) | hit)
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Whether the strings or object keys of `v` contain a NUL.
pub fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Replaces every NUL in the strings of a typed value (through its JSON form, which is only
/// rebuilt when a NUL is present); returns whether any was found.
pub fn replace_nul_in<T: Serialize + DeserializeOwned>(value: &mut T) -> Result<bool> {
    let mut json = serde_json::to_value(&*value)
        .map_err(|e| Error::Internal(format!("not serializable: {e}")))?;
    if !replace_nul(&mut json) {
        return Ok(false);
    }
    *value = serde_json::from_value(json)
        .map_err(|e| Error::Internal(format!("value changed shape without NULs: {e}")))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_is_replaced_in_strings_and_keys() {
        let mut v = json!({"a\u{0}": ["x\u{0}y", 1, null, {"k": "\u{0}"}], "b": "clean"});
        assert!(has_nul(&v));
        assert!(replace_nul(&mut v));
        assert_eq!(
            v,
            json!({"a\u{FFFD}": ["x\u{FFFD}y", 1, null, {"k": "\u{FFFD}"}], "b": "clean"})
        );
        assert!(!has_nul(&v));
        assert!(!replace_nul(&mut v), "idempotent");
    }

    #[test]
    fn clean_text_is_borrowed() {
        assert!(matches!(replace_nul_str("plain"), Cow::Borrowed("plain")));
        assert_eq!(replace_nul_str("a\u{0}b"), "a\u{FFFD}b");
    }

    #[test]
    fn typed_values_are_cleaned_through_json() {
        let mut v = vec!["a\u{0}".to_string(), "b".to_string()];
        assert!(replace_nul_in(&mut v).unwrap());
        assert_eq!(v, vec!["a\u{FFFD}".to_string(), "b".to_string()]);
        assert!(!replace_nul_in(&mut v).unwrap());
    }
}
