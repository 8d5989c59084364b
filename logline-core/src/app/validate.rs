//! Manifest checks beyond the types: version, ids, references between sections, scope
//! grammar and input mappings, each issue located by its path.

use std::collections::HashSet;

use serde_json::Value;

use super::input::Reference;
use super::manifest::{Manifest, ManifestIssue};
use super::MemoryGrant;

/// Parses `MAJOR.MINOR.PATCH` (digits only).
pub(crate) fn semver(v: &str) -> Option<(u64, u64, u64)> {
    let mut parts = v.split('.');
    let mut num = || -> Option<u64> {
        let p = parts.next()?;
        if p.is_empty()
            || !p.bytes().all(|b| b.is_ascii_digit())
            || (p.len() > 1 && p.starts_with('0'))
        {
            return None;
        }
        p.parse().ok()
    };
    let out = (num()?, num()?, num()?);
    parts.next().is_none().then_some(out)
}

/// Whether `id` is a valid app, alias or action id.
pub(crate) fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_.-".contains(c))
}

struct Issues(Vec<ManifestIssue>);

impl Issues {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ManifestIssue {
            path: path.into(),
            message: message.into(),
        });
    }

    fn id(&mut self, path: String, id: &str, seen: &mut HashSet<String>) {
        if !valid_id(id) {
            self.add(
                path,
                format!("`{id}` is not a valid id ([a-z0-9][a-z0-9_.-]*, at most 64)"),
            );
        } else if !seen.insert(id.to_string()) {
            self.add(path, format!("`{id}` is declared twice"));
        }
    }

    fn text(&mut self, path: String, value: &str) {
        if value.trim().is_empty() {
            self.add(path, "must not be empty");
        }
    }
}

/// Every issue of `m`, in document order.
pub(crate) fn issues(m: &Manifest) -> Vec<ManifestIssue> {
    let mut out = Issues(Vec::new());
    match semver(&m.version) {
        None => out.add(
            "version",
            format!("`{}` is not MAJOR.MINOR.PATCH", m.version),
        ),
        Some((1, _, _)) => {}
        Some((major, _, _)) => out.add(
            "version",
            format!("format version {major} is not supported (this reads 1.x.y)"),
        ),
    }
    let app = &m.app;
    if !valid_id(&app.id) {
        out.add(
            "app.id",
            format!(
                "`{}` is not a valid id ([a-z0-9][a-z0-9_.-]*, at most 64)",
                app.id
            ),
        );
    }
    out.text("app.name".into(), &app.name);
    let mut tools = HashSet::new();
    for (i, t) in app.scopes.tools.iter().enumerate() {
        let path = format!("app.scopes.tools[{i}]");
        if t.trim().is_empty() {
            out.add(path, "must not be empty");
        } else if !tools.insert(t) {
            out.add(path, format!("`{t}` is listed twice"));
        }
    }
    for (i, s) in app.scopes.memory.iter().enumerate() {
        if let Err(e) = MemoryGrant::parse(s) {
            out.add(format!("app.scopes.memory[{i}]"), e);
        }
    }
    for (i, s) in app.scopes.external.iter().enumerate() {
        out.text(format!("app.scopes.external[{i}]"), s);
    }
    let mut aliases = HashSet::new();
    for (i, w) in app.workflows.iter().enumerate() {
        out.id(format!("app.workflows[{i}].id"), &w.id, &mut aliases);
        out.text(format!("app.workflows[{i}].workflow_ref"), &w.workflow_ref);
        out.text(format!("app.workflows[{i}].label"), &w.label);
    }
    let mut actions = HashSet::new();
    for (i, a) in app.actions.iter().enumerate() {
        out.id(format!("app.actions[{i}].id"), &a.id, &mut actions);
        out.text(format!("app.actions[{i}].label"), &a.label);
        if !app.workflows.iter().any(|w| w.id == a.workflow_id) {
            out.add(
                format!("app.actions[{i}].workflow_id"),
                format!("no workflow of the app has the alias `{}`", a.workflow_id),
            );
        }
        for (key, v) in &a.input_mapping {
            mapping(&mut out, format!("app.actions[{i}].input_mapping.{key}"), v);
        }
    }
    out.0
}

/// Checks every `$` reference in a mapping value.
fn mapping(out: &mut Issues, path: String, v: &Value) {
    match v {
        Value::String(s) => {
            if let Err(e) = Reference::parse(s) {
                out.add(path, e);
            }
        }
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                mapping(out, format!("{path}[{i}]"), x);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                mapping(out, format!("{path}.{k}"), x);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_ids() {
        assert_eq!(semver("1.0.0"), Some((1, 0, 0)));
        assert_eq!(semver("1.12.3"), Some((1, 12, 3)));
        for bad in [
            "1", "1.0", "1.0.0.0", "v1.0.0", "1.0.x", "01.0.0", "1..0", "",
        ] {
            assert_eq!(semver(bad), None, "{bad}");
        }
        assert!(valid_id("guest_support_console"));
        assert!(valid_id("a.b-c"));
        for bad in ["", "Upper", "-x", "a b", &"a".repeat(65)] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
