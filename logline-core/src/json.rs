//! JSON kept compact: small objects and arrays as their text.
//!
//! A JSON object held as a [`Value`] costs a B-tree node of about 600 bytes however few its
//! keys; the same object as compact text costs its length. What is written often and read
//! back rarely (event payloads, step inputs and outputs) is kept this way when the text is
//! short. Longer or deeper values, scalars and floats that would not read back to the same
//! bits stay as they are.

use std::io;

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter};
use serde_json::Value;

/// Longest text kept as text.
const MAX_TEXT: usize = 1024;

/// Deepest nesting kept as text: far below the parser's depth limit (128), so it always
/// reads back.
const MAX_DEPTH: usize = 64;

/// A JSON value as the memory store keeps it.
#[derive(Debug, Clone)]
pub(crate) enum CompactJson {
    /// A short object or array, serialized.
    Text(Box<str>),
    /// Anything else, as it is.
    Value(Value),
}

impl CompactJson {
    /// Keeps `value` as text when that is smaller and reads back the same.
    pub fn new(value: Value) -> Self {
        match short_text_of(&value) {
            Some(text) => CompactJson::Text(text),
            None => CompactJson::Value(value),
        }
    }

    /// The value.
    pub fn value(&self) -> Value {
        match self {
            CompactJson::Text(text) => serde_json::from_str(text).unwrap_or_else(|e| {
                // Unreachable: the text was written by the serializer and is shallow.
                tracing::error!(error = %e, "kept JSON text does not parse");
                Value::Null
            }),
            CompactJson::Value(v) => v.clone(),
        }
    }
}

/// The text of `value` when it is an object or array of at most [`MAX_TEXT`] bytes, nested at
/// most [`MAX_DEPTH`] deep, whose numbers all read back as the same value (`None` otherwise:
/// serializing stops as soon as the text is too long, and a failed serialization is a `None`
/// too).
pub(crate) fn short_text_of<T: Serialize + ?Sized>(value: &T) -> Option<Box<str>> {
    let mut out = Capped {
        buf: [0; MAX_TEXT],
        len: 0,
    };
    let mut checked = Checked {
        depth: 0,
        reads_back: true,
    };
    let mut ser = serde_json::Serializer::with_formatter(&mut out, &mut checked);
    value.serialize(&mut ser).ok()?;
    let text = std::str::from_utf8(&out.buf[..out.len]).ok()?;
    let container = matches!(text.as_bytes().first(), Some(b'{' | b'['));
    (container && checked.reads_back).then(|| Box::from(text))
}

/// serde_json's compact format, checking as it writes that the text reads back as the value
/// it was written from: it nests at most [`MAX_DEPTH`] deep, and every float reads back with
/// the same bits ([`number_reads_back`]).
struct Checked {
    depth: usize,
    reads_back: bool,
}

impl Checked {
    fn open(&mut self) {
        self.depth += 1;
        self.reads_back &= self.depth <= MAX_DEPTH;
    }

    fn close(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Writes a float as the compact format does, noting whether it reads back.
    fn float<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        write: impl FnOnce(&mut Capped<32>) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut digits = Capped {
            buf: [0; 32],
            len: 0,
        };
        write(&mut digits)?;
        let written = &digits.buf[..digits.len];
        self.reads_back &= std::str::from_utf8(written).is_ok_and(number_reads_back);
        writer.write_all(written)
    }
}

impl Formatter for &mut Checked {
    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        self.float(writer, |d| CompactFormatter.write_f32(d, value))
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        self.float(writer, |d| CompactFormatter.write_f64(d, value))
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open();
        CompactFormatter.begin_array(writer)
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close();
        CompactFormatter.end_array(writer)
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open();
        CompactFormatter.begin_object(writer)
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close();
        CompactFormatter.end_object(writer)
    }
}

/// Whether the number `n` reads back as written: an integer, or a float written with at most
/// 15 significant digits and a power of ten of at most 22, which the parser turns into a
/// float with one exact operation on exact operands (so it is the nearest float, the one that
/// was written). Other floats may read back one unit in the last place away.
fn number_reads_back(n: &str) -> bool {
    let (mantissa, exponent) = match n.split_once(['e', 'E']) {
        Some((m, e)) => match e.parse::<i32>() {
            Ok(e) => (m, e),
            Err(_) => return false,
        },
        None => (n, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if frac.is_empty() && !mantissa.contains('.') && n.len() == mantissa.len() {
        return true; // an integer: read back exactly
    }
    let digits = int.trim_start_matches('-').bytes().chain(frac.bytes());
    let significant = digits.skip_while(|&d| d == b'0').count();
    let frac_len = i32::try_from(frac.len()).unwrap_or(i32::MAX);
    let scale = exponent.saturating_sub(frac_len);
    significant <= 15 && scale.unsigned_abs() <= 22
}

/// A writer into a buffer of `N` bytes on the stack that fails once more is written.
struct Capped<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> io::Write for Capped<N> {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let end = self.len + buf.len();
        let Some(slot) = self.buf.get_mut(self.len..end) else {
            return Err(io::Error::other("longer than the compact limit"));
        };
        // The serializer writes most punctuation one byte at a time: no copy call for those.
        match (slot, buf) {
            ([to], [byte]) => *to = *byte,
            (slot, buf) => slot.copy_from_slice(buf),
        }
        self.len = end;
        Ok(buf.len())
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write(buf).map(|_| ())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn small_objects_are_kept_as_text_and_read_back_equal() {
        for v in [
            json!({"node_id": "n3", "node_type": "static", "index": 3}),
            json!([1, "two", {"three": [null, true]}]),
            json!({}),
            json!({"emoji": "\u{1F600}", "quote": "a\"b\\c\n", "big": u64::MAX, "neg": -7}),
        ] {
            let kept = CompactJson::new(v.clone());
            assert!(matches!(kept, CompactJson::Text(_)), "{v}");
            assert_eq!(kept.value(), v);
        }
    }

    fn json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::btree_map(any::<String>(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Whatever is kept reads back equal, as text or as it is.
        #[test]
        fn any_value_reads_back_equal(v in json()) {
            proptest::prop_assert_eq!(CompactJson::new(v.clone()).value(), v);
        }
    }

    #[test]
    fn short_floats_and_dotted_strings_are_text() {
        for v in [
            json!({"cost_cents": 0.0, "version": "1.0.0"}),
            json!({"x": 0.25, "y": -12.5, "z": 1e-7, "w": 123456789.125}),
            json!({"quoted": "say \"1.5e300\"", "n": 3}),
        ] {
            let text = short_text_of(&v);
            assert!(text.is_some(), "{v}");
            assert_eq!(serde_json::from_str::<Value>(&text.unwrap()).unwrap(), v);
        }
        for v in [
            json!({"x": 0.1 + 0.2}),
            json!({"x": 1.5e300}),
            json!({"x": 5e-324}),
        ] {
            assert!(short_text_of(&v).is_none(), "{v}");
        }
    }

    proptest::proptest! {
        /// A float kept as text reads back with the same bits.
        #[test]
        fn a_float_kept_as_text_reads_back_exactly(
            x in proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO,
            cents in -1_000_000i64..1_000_000,
        ) {
            for x in [x, cents as f64 / 100.0] {
                if let Some(text) = short_text_of(&json!({"x": x})) {
                    let back: Value = serde_json::from_str(&text).unwrap();
                    proptest::prop_assert_eq!(back["x"].as_f64().map(f64::to_bits), Some(x.to_bits()), "{}", text);
                }
            }
        }
    }

    #[test]
    fn large_values_floats_and_scalars_stay_values() {
        let long = json!({"text": "x".repeat(MAX_TEXT)});
        let float = json!({"cost": 0.1 + 0.2});
        let deep = (0..200).fold(json!(1), |v, _| json!([v]));
        let short_but_deep = (0..=MAX_DEPTH).fold(json!(1), |v, _| json!({ "a": v }));
        for v in [
            long,
            float,
            deep,
            short_but_deep,
            json!("a string"),
            json!(12),
            Value::Null,
        ] {
            let kept = CompactJson::new(v.clone());
            assert!(matches!(kept, CompactJson::Value(_)), "{v}");
            assert_eq!(kept.value(), v);
        }
    }

    #[test]
    fn nesting_up_to_the_depth_limit_is_text_and_deeper_is_not() {
        let nest = |levels: usize| (1..levels).fold(json!([1]), |v, _| json!([v]));
        let at_limit = nest(MAX_DEPTH);
        assert_eq!(
            serde_json::from_str::<Value>(&short_text_of(&at_limit).unwrap()).unwrap(),
            at_limit
        );
        assert!(matches!(CompactJson::new(at_limit), CompactJson::Text(_)));
        let deeper = nest(MAX_DEPTH + 1);
        assert!(short_text_of(&deeper).is_none());
        assert!(matches!(CompactJson::new(deeper), CompactJson::Value(_)));
    }
}
