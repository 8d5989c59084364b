//! JSON Schema validation of tool inputs and structured outputs (the `jsonschema` crate).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::Value;

use crate::error::{Error, Result, SchemaViolation};

/// Compiled validators, cached by schema content.
#[derive(Default)]
pub struct SchemaCache {
    compiled: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

impl SchemaCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cache. It only maps schema texts to compiled validators (single inserts and
    /// clears), so a panic elsewhere while it was locked cannot leave a wrong entry: a
    /// poisoned lock is used as is.
    fn compiled(&self) -> MutexGuard<'_, HashMap<String, Arc<jsonschema::Validator>>> {
        self.compiled.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn validator(&self, schema: &Value) -> Result<Arc<jsonschema::Validator>> {
        let key = schema.to_string();
        let cached = self.compiled().get(&key).cloned();
        if let Some(v) = cached {
            return Ok(v);
        }
        let v = Arc::new(
            jsonschema::validator_for(schema)
                .map_err(|e| Error::InvalidInput(format!("invalid JSON Schema: {e}")))?,
        );
        let mut map = self.compiled();
        if map.len() > 4096 {
            map.clear();
        }
        map.insert(key, v.clone());
        Ok(v)
    }

    /// Every violation of `instance` against `schema` (empty when valid).
    pub fn violations(&self, schema: &Value, instance: &Value) -> Result<Vec<SchemaViolation>> {
        let v = self.validator(schema)?;
        Ok(v.iter_errors(instance)
            .map(|e| SchemaViolation {
                instance_path: e.instance_path().to_string(),
                schema_path: e.schema_path().to_string(),
                message: e.to_string(),
            })
            .collect())
    }

    /// `Ok` when `instance` matches; else a [`Error::SchemaValidation`] naming `subject`.
    pub fn validate(&self, subject: &str, schema: &Value, instance: &Value) -> Result<()> {
        let violations = self.violations(schema, instance)?;
        if violations.is_empty() {
            Ok(())
        } else {
            Err(Error::SchemaValidation {
                tool_id: subject.to_string(),
                violations,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_every_failing_path() {
        let schema = json!({"type": "object", "required": ["a"],
            "properties": {"a": {"type": "integer"}, "b": {"type": "array", "items": {"type": "string"}}}});
        let c = SchemaCache::new();
        assert!(c
            .validate("t", &schema, &json!({"a": 1, "b": ["x"]}))
            .is_ok());
        let err = c
            .validate("t", &schema, &json!({"a": "x", "b": ["ok", 3]}))
            .unwrap_err();
        let Error::SchemaValidation { violations, .. } = &err else {
            panic!("{err}")
        };
        let paths: Vec<_> = violations
            .iter()
            .map(|v| v.instance_path.as_str())
            .collect();
        assert!(paths.contains(&"/a"), "{paths:?}");
        assert!(paths.contains(&"/b/1"), "{paths:?}");
        assert!(err.to_string().contains("/b/1"));
    }

    /// Tool schemas come from remote hubs: one that reaches itself without descending into the
    /// instance (found by fuzzing) must give an answer, not overflow the stack.
    #[test]
    fn self_referencing_schemas_do_not_recurse_forever() {
        let c = SchemaCache::new();
        let instance = json!({"a": "x"});
        for schema in [
            json!({"allOf": [{"$ref": "#"}]}),
            json!({"anyOf": [{"$ref": "#"}, {"type": "string"}]}),
            json!({"not": {"$ref": "#"}}),
            json!({"$defs": {"a": {"allOf": [{"$ref": "#/$defs/b"}]},
                             "b": {"oneOf": [{"$ref": "#/$defs/a"}]}},
                   "$ref": "#/$defs/a"}),
        ] {
            assert!(c.violations(&schema, &instance).is_ok(), "{schema}");
        }
    }
}
