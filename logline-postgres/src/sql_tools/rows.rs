//! One result row, as `row_to_json` prints it, read back with its column order and
//! duplicate column names (`a.id, b.id`) kept.

use std::fmt;

use logline_core::{Error, Result};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

/// Column names and values of one row, in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParsedRow {
    pub names: Vec<String>,
    pub values: Vec<Value>,
}

struct RowVisitor;

impl<'de> Visitor<'de> for RowVisitor {
    type Value = ParsedRow;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<ParsedRow, A::Error> {
        let mut row = ParsedRow {
            names: Vec::new(),
            values: Vec::new(),
        };
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            row.names.push(k);
            row.values.push(v);
        }
        Ok(row)
    }
}

/// Parses one `row_to_json` text.
pub(crate) fn parse_row(text: &str) -> Result<ParsedRow> {
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_map(RowVisitor)
        .map_err(|e| Error::Internal(format!("unreadable result row: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_duplicates_are_kept() {
        let r = parse_row(r#"{"z":1,"a":{"x":[1]},"z":null}"#).unwrap();
        assert_eq!(r.names, ["z", "a", "z"]);
        assert_eq!(r.values[1]["x"][0], 1);
        assert!(r.values[2].is_null());
        assert!(parse_row("[1]").is_err());
    }
}
