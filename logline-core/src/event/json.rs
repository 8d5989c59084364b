//! An event's payload as it travels to the store: JSON built once, kept as compact text
//! when short.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::json::{short_text_of, CompactJson};
use crate::nul::{has_nul, replace_nul};

/// The JSON payload of a [`super::NewEvent`]: a short object or array as its compact text
/// (what a store writes), anything else as a [`Value`]. Equal when the JSON is equal.
#[derive(Clone)]
pub struct PayloadJson(CompactJson);

impl PayloadJson {
    /// The payload `value`.
    pub fn new(value: Value) -> Self {
        PayloadJson(CompactJson::new(value))
    }

    /// `payload` serialized straight to text when that text is short, its numbers read back
    /// as written and `keep(text)` allows it as it is; otherwise `payload` as a [`Value`] that `fix`
    /// changed first (the slow path: a long payload, or one that needs redacting).
    pub(crate) fn build<T: Serialize + ?Sized>(
        payload: &T,
        keep: impl FnOnce(&str) -> bool,
        fix: impl FnOnce(&mut Value),
    ) -> serde_json::Result<Self> {
        if let Some(text) = short_text_of(payload).filter(|t| keep(t)) {
            return Ok(PayloadJson(CompactJson::Text(text)));
        }
        let mut value = serde_json::to_value(payload)?;
        fix(&mut value);
        Ok(PayloadJson::new(value))
    }

    /// The payload as a value.
    pub fn to_value(&self) -> Value {
        self.0.value()
    }

    /// The payload as a value, without a copy when it is held as one.
    pub fn into_value(self) -> Value {
        match self.0 {
            CompactJson::Value(v) => v,
            text => text.value(),
        }
    }

    /// The payload's JSON text (borrowed when it is held as text).
    pub fn text(&self) -> Cow<'_, str> {
        match &self.0 {
            CompactJson::Text(t) => Cow::Borrowed(t),
            CompactJson::Value(v) => Cow::Owned(v.to_string()),
        }
    }

    /// [`PayloadJson::text`] of [`PayloadJson::without_nul`], without a copy of the payload.
    pub fn text_without_nul(&self) -> Cow<'_, str> {
        if self.has_nul() {
            Cow::Owned(self.clone().without_nul().text().into_owned())
        } else {
            self.text()
        }
    }

    /// The payload with every NUL in its strings and keys replaced
    /// ([`crate::nul::NUL_REPLACEMENT`]); unchanged (no copy) when it has none.
    pub fn without_nul(self) -> Self {
        if !self.has_nul() {
            return self;
        }
        let mut v = self.into_value();
        replace_nul(&mut v);
        PayloadJson::new(v)
    }

    /// Whether a string or key holds a NUL (in JSON text always the escape `\u0000`).
    fn has_nul(&self) -> bool {
        match &self.0 {
            CompactJson::Text(t) => t.contains("\\u0000"),
            CompactJson::Value(v) => has_nul(v),
        }
    }

    /// How the payload is held, for a store that keeps it as it is.
    pub(crate) fn into_compact(self) -> CompactJson {
        self.0
    }
}

impl From<Value> for PayloadJson {
    fn from(value: Value) -> Self {
        PayloadJson::new(value)
    }
}

impl PartialEq for PayloadJson {
    fn eq(&self, other: &Self) -> bool {
        let same_text = matches!((&self.0, &other.0),
            (CompactJson::Text(a), CompactJson::Text(b)) if a == b);
        same_text || self.to_value() == other.to_value()
    }
}

impl fmt::Debug for PayloadJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

impl Serialize for PayloadJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            CompactJson::Value(v) => v.serialize(serializer),
            text => text.value().serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for PayloadJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(PayloadJson::new)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_short_payload_is_text_and_reads_back_equal() {
        let p = json!({"node_id": "n1", "index": 3});
        let built = PayloadJson::build(&p, |_| true, |_| unreachable!()).unwrap();
        assert!(matches!(built.0, CompactJson::Text(_)));
        assert_eq!(built.to_value(), p);
        assert_eq!(built, PayloadJson::new(p));
    }

    #[test]
    fn a_payload_refused_as_text_takes_the_fixed_value() {
        let p = json!({"token": "abc"});
        let built =
            PayloadJson::build(&p, |_| false, |v| v["token"] = json!("[REDACTED]")).unwrap();
        assert_eq!(built.to_value(), json!({"token": "[REDACTED]"}));
    }

    #[test]
    fn floats_and_long_payloads_take_the_value_path() {
        let float = json!({"cost": 0.1 + 0.2});
        let long = json!({"text": "x".repeat(4096)});
        for p in [float, long] {
            let mut fixed = false;
            let built = PayloadJson::build(&p, |_| true, |_| fixed = true).unwrap();
            assert!(fixed, "{p}");
            assert_eq!(built.into_value(), p);
        }
    }

    #[test]
    fn nuls_are_replaced_in_text_and_values() {
        let dirty = json!({"a\u{0}": "b\u{0}"});
        let clean = json!({"a\u{FFFD}": "b\u{FFFD}"});
        let as_text = PayloadJson::build(&dirty, |_| true, |_| {}).unwrap();
        assert!(matches!(as_text.0, CompactJson::Text(_)));
        assert_eq!(as_text.without_nul().to_value(), clean);
        let long = json!({"k": "x".repeat(4096), "n": "\u{0}"});
        let fixed = PayloadJson::new(long).without_nul().into_value();
        assert_eq!(fixed["n"], json!("\u{FFFD}"));
    }
}
