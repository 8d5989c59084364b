//! Conversions between core types and rows.

use chrono::{DateTime, Duration, TimeZone, Utc};
use logline_core::store::Page;
use logline_core::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::corrupt;

/// `(offset, limit)` of a page as `BIGINT`s.
pub(crate) fn page_args(page: Page) -> (i64, i64) {
    (
        i64::try_from(page.offset).unwrap_or(i64::MAX),
        i64::try_from(page.limit).unwrap_or(i64::MAX),
    )
}

/// The snake_case name serde gives a unit enum variant (`RunStatus::Completed` → `completed`).
pub(crate) fn enum_str<T: Serialize>(v: &T) -> Result<String> {
    match to_json(v)? {
        Value::String(s) => Ok(s),
        other => Err(Error::Internal(format!(
            "expected a unit variant, serialized as {other}"
        ))),
    }
}

/// Parses a name written by [`enum_str`].
pub(crate) fn parse_enum<T: DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_value(Value::String(s.to_string()))
        .map_err(|_| corrupt(format!("unknown {what} `{s}`")))
}

/// Serializes one of our own values (a failure is a bug, not bad input).
pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::Internal(format!("not serializable: {e}")))
}

/// Serializes `v` to a JSON object and takes `keys` out of it (missing keys give `Null`).
pub(crate) fn split<T: Serialize, const N: usize>(
    v: &T,
    keys: [&str; N],
) -> Result<([Value; N], Value)> {
    split_object(to_json(v)?, keys)
}

/// Takes `keys` out of the JSON object `v` (missing keys give `Null`); the parts are
/// [`storable`].
pub(crate) fn split_object<const N: usize>(
    v: Value,
    keys: [&str; N],
) -> Result<([Value; N], Value)> {
    let mut obj = match storable(v) {
        Value::Object(m) => m,
        other => {
            return Err(Error::Internal(format!(
                "expected a JSON object, got {other}"
            )))
        }
    };
    let taken = keys.map(|k| obj.remove(k).unwrap_or(Value::Null));
    Ok((taken, Value::Object(obj)))
}

/// Puts `fields` back into the object `rest` and deserializes it.
pub(crate) fn join<T: DeserializeOwned>(
    what: &str,
    rest: Value,
    fields: impl IntoIterator<Item = (&'static str, Value)>,
) -> Result<T> {
    serde_json::from_value(join_object(what, rest, fields)?)
        .map_err(|e| corrupt(format!("{what}: {e}")))
}

/// Puts `fields` back into the object `rest`.
pub(crate) fn join_object(
    what: &str,
    rest: Value,
    fields: impl IntoIterator<Item = (&'static str, Value)>,
) -> Result<Value> {
    let mut obj = match rest {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => return Err(corrupt(format!("{what}: expected an object, got {other}"))),
    };
    for (k, v) in fields {
        obj.insert(k.to_string(), v);
    }
    Ok(Value::Object(obj))
}

/// `v` as `jsonb` accepts it: every NUL (which `jsonb` and `text` reject) replaced with
/// U+FFFD, the transformation every backend applies ([`logline_core::nul`]).
pub(crate) fn storable(mut v: Value) -> Value {
    logline_core::nul::replace_nul(&mut v);
    v
}

/// `Some(v)` unless `v` is JSON null.
pub(crate) fn non_null(v: Value) -> Option<Value> {
    match v {
        Value::Null => None,
        v => Some(v),
    }
}

fn pg_epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// Splits a timestamp into the microsecond value PostgreSQL stores and the nanoseconds it
/// drops (−999..=999), so the pair reads back exactly.
pub(crate) fn split_ts(ts: DateTime<Utc>) -> (DateTime<Utc>, i16) {
    let epoch = pg_epoch();
    let Some(micros) = (ts - epoch).num_microseconds() else {
        return (ts, 0);
    };
    let stored = epoch + Duration::microseconds(micros);
    let ns = (ts - stored).num_nanoseconds().unwrap_or(0);
    (stored, i16::try_from(ns).unwrap_or(0))
}

/// Inverse of [`split_ts`].
pub(crate) fn join_ts(stored: DateTime<Utc>, ns: i16) -> DateTime<Utc> {
    stored + Duration::nanoseconds(i64::from(ns))
}

/// `u32` → `INTEGER`.
pub(crate) fn int(what: &str, v: u32) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::InvalidInput(format!("{what} {v} exceeds 2^31-1")))
}

/// `u64` → `BIGINT`.
pub(crate) fn bigint(what: &str, v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::InvalidInput(format!("{what} {v} exceeds 2^63-1")))
}

/// Stored `INTEGER`/`BIGINT` → unsigned.
pub(crate) fn unsigned<T: TryFrom<i64>>(what: &str, v: i64) -> Result<T> {
    T::try_from(v).map_err(|_| corrupt(format!("{what} {v} out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use logline_core::run::RunStatus;

    #[test]
    fn timestamps_round_trip_exactly() {
        for ts in [
            Utc::now(),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or_default()
                + Duration::nanoseconds(123_456_789),
            Utc.with_ymd_and_hms(2030, 5, 6, 7, 8, 9)
                .single()
                .unwrap_or_default()
                + Duration::nanoseconds(999_999_999),
        ] {
            let (stored, ns) = split_ts(ts);
            assert_eq!(stored.timestamp_subsec_nanos() % 1000, 0);
            assert!((-999..=999).contains(&ns));
            assert_eq!(join_ts(stored, ns), ts);
        }
    }

    #[test]
    fn enums_use_serde_names() {
        assert_eq!(
            enum_str(&RunStatus::Completed).ok().as_deref(),
            Some("completed")
        );
        let s: RunStatus = parse_enum("status", "paused").unwrap_or(RunStatus::Pending);
        assert_eq!(s, RunStatus::Paused);
        assert!(parse_enum::<RunStatus>("status", "nope").is_err());
    }

    #[test]
    fn split_and_join_are_inverse() {
        let v = serde_json::json!({"a": 1, "b": {"c": 2}, "d": null});
        let ([b, x], rest) = split(&v, ["b", "x"]).unwrap_or_default();
        assert_eq!(b, serde_json::json!({"c": 2}));
        assert_eq!(x, Value::Null);
        let back: Value = join("t", rest, [("b", b)]).unwrap_or_default();
        assert_eq!(back, v);
    }
}
