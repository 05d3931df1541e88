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
        Kind::VolumeSnapshot => "snapshot",
        Kind::Service | Kind::Namespace | Kind::ConfigMap | Kind::Lease | Kind::Pod => "",
    }
}

/// The spec document. `header` lines become comments at the top.
pub fn spec_text(stack: &str, namespace: &str, entries: &[Entry], header: &[String]) -> String {
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
    out.push_str(&format!("name = {}\n", toml::Value::String(stack.into())));
    out.push_str(&format!(
        "namespace = {}\n",
        toml::Value::String(namespace.into())
    ));
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
        out.push('\n');
        for note in &e.notes {
            out.push_str(&format!("# {note}\n"));
        }
        out.push_str(&format!("[[{key}]]\n"));
        table_body(&mut out, key, &t);
    }
    out
}

/// Longest inline table or array written on the key's line; longer ones get their own section.
const INLINE_WIDTH: usize = 80;

/// A key as TOML writes it: bare when it can be, quoted otherwise.
fn key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_string()
    } else {
        toml::Value::String(k.to_string()).to_string()
    }
}

/// The value on one line, if it is short enough (or cannot be split: scalars and lists of
/// scalars).
fn inline(v: &toml::Value) -> Option<String> {
    let text = v.to_string();
    let splittable = match v {
        toml::Value::Table(t) => !t.is_empty(),
        toml::Value::Array(a) => !a.is_empty() && a.iter().all(toml::Value::is_table),
        _ => false,
    };
    (!splittable || text.len() <= INLINE_WIDTH).then_some(text)
}

/// The keys of a table (short values first), then its sections.
fn table_body(out: &mut String, path: &str, t: &Table) {
    let mut sections = Vec::new();
    for (k, v) in t {
        match inline(v) {
            Some(text) => out.push_str(&format!("{} = {text}\n", key(k))),
            None => sections.push((k, v)),
        }
    }
    for (k, v) in sections {
        let sub = format!("{path}.{}", key(k));
        match v {
            toml::Value::Table(inner) => {
                // A table holding only tables needs no header of its own.
                if inner.values().any(|v| inline(v).is_some()) {
                    out.push_str(&format!("\n[{sub}]\n"));
                }
                table_body(out, &sub, inner);
            }
            toml::Value::Array(items) => {
                for item in items.iter().filter_map(toml::Value::as_table) {
                    out.push_str(&format!("\n[[{sub}]]\n"));
                    table_body(out, &sub, item);
                }
            }
            _ => unreachable!("only tables and arrays of tables are split"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_values_inline_long_ones_in_sections_and_it_parses_back() {
        let table: Table = toml::from_str(
            r#"
name = "db"
image = "postgres:17"
env = { PGDATA = "/data", PASSWORD = { secret = "pg", key = "password" } }
[[volume_claim]]
name = "data"
size = "1Gi"
mount = "/data"
"#,
        )
        .unwrap();
        let entry = Entry {
            kind: Kind::StatefulSet,
            table,
            patch: json!({"spec": {"template": {"metadata": {"labels": {"app.kubernetes.io/name": "db"}},
                "spec": {"containers": [{"name": "db", "image": "postgres:17",
                    "readinessProbe": {"exec": {"command": ["pg_isready", "-U", "postgres", "-d", "postgres", "-h", "127.0.0.1"]}}}]}}}}),
            adopt: true,
            notes: vec!["a remark".into()],
        };
        let text = spec_text("s", "demo", &[entry], &["head".into(), String::new()]);
        assert!(
            text.starts_with("# head\n#\n\nname = \"s\"\nnamespace = \"demo\"\n"),
            "{text}"
        );
        assert!(
            text.contains("# a remark\n[[statefulset]]\nname = \"db\"\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "env = { PGDATA = \"/data\", PASSWORD = { secret = \"pg\", key = \"password\" } }"
            ),
            "{text}"
        );
        assert!(
            text.contains("labels = { \"app.kubernetes.io/name\" = \"db\" }"),
            "{text}"
        );
        assert!(
            text.contains("[[statefulset.patch.spec.template.spec.containers]]"),
            "{text}"
        );
        let back: toml::Table = toml::from_str(&text).unwrap();
        let sts = &back["statefulset"][0];
        assert_eq!(sts["adopt"].as_bool(), Some(true));
        assert_eq!(sts["volume_claim"][0]["mount"].as_str(), Some("/data"));
        assert_eq!(
            sts["patch"]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["command"][6].as_str(),
            Some("127.0.0.1")
        );
    }
}
