//! The imported spec as TOML text: a header comment saying what was left out and why, then one
//! table per object with its remarks above it. Pure.

use super::extract::to_toml;
use crate::kinds::Kind;
use serde_json::Value;
use toml::Table;

/// One object's table.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: Kind,
    /// The keys (without `adopt` and `patch`).
    pub table: Table,
    /// The patch (a JSON object; empty: none).
    pub patch: Value,
    /// The object exists without this stack's labels.
    pub adopt: bool,
    /// Remarks written above the table.
    pub notes: Vec<String>,
}

impl Entry {
    pub fn name(&self) -> &str {
        self.table
            .get("name")
            .and_then(toml::Value::as_str)
            .unwrap_or_default()
    }
}

/// The spec's array-of-tables key for a kind.
pub fn table_key(kind: Kind) -> &'static str {
    match kind {
        Kind::StorageClass => "storage_class",
        Kind::PersistentVolume => "volume",
        Kind::PersistentVolumeClaim => "claim",
        Kind::StatefulSet => "statefulset",
        Kind::Deployment => "deployment",
        Kind::DaemonSet => "daemonset",
        Kind::Service | Kind::Namespace => "",
    }
}

/// The spec document. `header` lines become comments at the top.
pub fn spec_text(stack: &str, namespace: &str, entries: &[Entry], header: &[String]) -> String {
    let mut doc = Table::new();
    doc.insert("name".into(), toml::Value::String(stack.into()));
    doc.insert("namespace".into(), toml::Value::String(namespace.into()));
    let mut notes: Vec<(&'static str, Vec<String>)> = Vec::new();
    for e in entries {
        let key = table_key(e.kind);
        let mut t = e.table.clone();
        if e.adopt {
            t.insert("adopt".into(), toml::Value::Boolean(true));
        }
        if e.patch.as_object().is_some_and(|m| !m.is_empty())
            && let Some(p) = to_toml(&e.patch)
        {
            t.insert("patch".into(), p);
        }
        match doc
            .entry(key)
            .or_insert_with(|| toml::Value::Array(Vec::new()))
        {
            toml::Value::Array(a) => a.push(toml::Value::Table(t)),
            _ => unreachable!("kind keys hold arrays"),
        }
        notes.push((key, e.notes.clone()));
    }
    let body = toml::to_string(&doc).expect("TOML values serialize");
    let mut out = String::new();
    for line in header {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            out.push_str(&format!("# {line}\n"));
        }
    }
    if !header.is_empty() {
        out.push('\n');
    }
    // Remarks go above each `[[key]]` header, in entry order per key.
    let mut pending: std::collections::HashMap<&str, std::collections::VecDeque<Vec<String>>> =
        Default::default();
    for (key, n) in notes {
        pending.entry(key).or_default().push_back(n);
    }
    for line in body.lines() {
        if let Some(key) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]"))
            && let Some(n) = pending.get_mut(key).and_then(|q| q.pop_front())
        {
            if !out.ends_with("\n\n") {
                out.push('\n');
            }
            for note in n {
                out.push_str(&format!("# {note}\n"));
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}
