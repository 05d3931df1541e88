//! Secret-looking plain environment values (`*PASSWORD*`, `*TOKEN*`, … see
//! [`crate::spec::looks_secret`]) are never written into an imported spec. Each is written as
//! the placeholder [`crate::spec::NOT_IMPORTED`], which the spec loader refuses at its line, like
//! terraform's generated configuration leaves sensitive attributes out: the placeholder can
//! never be applied in place of the value. Import says on standard error which variables to
//! supply and how (the value itself, which plans mask, or a reference to a Secret holding it).
//!
//! A reference is not written in the value's place: the object runs with the value, and a
//! server-side apply that adopts it cannot drop a `value` that another field manager (kubectl,
//! Helm) owns, so the reference would be refused next to it. Pure.

use super::write::Entry;
use crate::spec::{NOT_IMPORTED, looks_secret};
use serde_json::Value;

/// A variable whose value was not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    /// `statefulset/db`.
    pub object: String,
    pub variable: String,
    /// The value it stands for: kept in memory for import's own check, never written.
    value: String,
}

impl Placeholder {
    /// The Secret a reference would name (`<workload>-env`).
    pub fn suggested_secret(&self) -> String {
        let name = self.object.split_once('/').map_or("", |(_, n)| n);
        let mut secret: String = name.chars().take(249).collect();
        secret.push_str("-env");
        secret
    }

    /// The Secret key a reference would name: the variable with characters a key cannot hold
    /// as `_`.
    pub fn suggested_key(&self) -> String {
        self.variable
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }
}

/// Replaces the secret-looking plain values of a workload's table (`env`) and of its `patch`
/// (containers given whole, init containers) by [`NOT_IMPORTED`]; returns what was replaced.
pub fn mask_entry(entry: &mut Entry) -> Vec<Placeholder> {
    if !entry.kind.is_workload() {
        return Vec::new();
    }
    let object = format!("{}/{}", entry.kind.short(), entry.name());
    let mut out: Vec<Placeholder> = Vec::new();
    let mut found = |variable: &str, value: &str| {
        if !out
            .iter()
            .any(|p| p.variable == variable && p.value == value)
        {
            out.push(Placeholder {
                object: object.clone(),
                variable: variable.to_string(),
                value: value.to_string(),
            });
        }
    };
    if let Some(env) = entry
        .table
        .get_mut("env")
        .and_then(toml::Value::as_table_mut)
    {
        for (name, value) in env.iter_mut() {
            if let toml::Value::String(v) = value
                && looks_secret(name)
                && !v.is_empty()
                && v != NOT_IMPORTED
            {
                found(name, v);
                *v = NOT_IMPORTED.to_string();
            }
        }
    }
    mask_patch(&mut entry.patch, &mut found);
    out
}

/// Every `env` list anywhere in a patch: plain values of secret-looking variables.
fn mask_patch(v: &mut Value, found: &mut dyn FnMut(&str, &str)) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(env)) = map.get_mut("env") {
                for var in env.iter_mut() {
                    let Some(name) = var["name"].as_str().map(str::to_string) else {
                        continue;
                    };
                    if let Some(Value::String(value)) = var.get_mut("value")
                        && looks_secret(&name)
                        && !value.is_empty()
                        && value != NOT_IMPORTED
                    {
                        found(&name, value);
                        *value = NOT_IMPORTED.to_string();
                    }
                }
            }
            for (key, value) in map.iter_mut() {
                if key != "env" {
                    mask_patch(value, found);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| mask_patch(i, found)),
        _ => {}
    }
}

/// `text` with every value the placeholders stand for replaced by the placeholder (for
/// messages of import's own check, which a server may have built from the values).
pub fn scrub(text: &str, placeholders: &[Placeholder]) -> String {
    let mut out = text.to_string();
    for p in placeholders.iter().filter(|p| p.value.len() >= 3) {
        out = out.replace(&p.value, NOT_IMPORTED);
    }
    out
}

/// The remark above a workload's table in the spec.
pub fn note(placeholders: &[Placeholder]) -> Option<String> {
    placeholders.first()?;
    Some(format!(
        "env {}: the value looked secret and was not imported; plan refuses {NOT_IMPORTED:?} until it is replaced by the value or by a reference to a Secret holding it ({})",
        names(placeholders),
        reference(placeholders),
    ))
}

/// The warnings import prints on standard error, one per workload.
pub fn warnings(placeholders: &[Placeholder], namespace: &str) -> Vec<String> {
    let mut objects: Vec<&str> = placeholders.iter().map(|p| p.object.as_str()).collect();
    objects.dedup();
    objects
        .into_iter()
        .map(|object| {
            let of: Vec<Placeholder> = placeholders
                .iter()
                .filter(|p| p.object == object)
                .cloned()
                .collect();
            let mut keys: Vec<String> = of.iter().map(Placeholder::suggested_key).collect();
            keys.dedup();
            format!(
                "Warning: {object}: env {} looked secret and {} not imported: the spec says {NOT_IMPORTED:?}, which plan refuses. Replace it by the value (plans mask it), or create a Secret and refer to it: kubectl create secret generic {} -n {namespace} {}, then {}",
                names(&of),
                if of.len() == 1 { "was" } else { "were" },
                of[0].suggested_secret(),
                keys.iter()
                    .map(|k| format!("--from-literal={k}=…"))
                    .collect::<Vec<_>>()
                    .join(" "),
                reference(&of),
            )
        })
        .collect()
}

fn names(placeholders: &[Placeholder]) -> String {
    let mut names: Vec<&str> = placeholders.iter().map(|p| p.variable.as_str()).collect();
    names.dedup();
    names.join(", ")
}

/// `DB_PASSWORD = { secret = "db-env", key = "DB_PASSWORD" }` for the first variable.
fn reference(placeholders: &[Placeholder]) -> String {
    let p = &placeholders[0];
    format!(
        "{} = {{ secret = {:?}, key = {:?} }}",
        p.variable,
        p.suggested_secret(),
        p.suggested_key()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::Kind;
    use serde_json::json;

    fn entry() -> Entry {
        let table: toml::Table = toml::from_str(
            r#"
name = "db"
image = "img:1"
env = { DB_PASSWORD = "kst-import-secret", PGDATA = "/var/lib/pg", API_TOKEN = { secret = "s", key = "t" }, EMPTY_SECRET = "" }
"#,
        )
        .unwrap();
        Entry {
            kind: Kind::StatefulSet,
            table,
            patch: json!({"spec": {"template": {"spec": {"initContainers": [{"name": "init",
                "env": [{"name": "API_KEY", "value": "kst-patch-secret"}, {"name": "MODE", "value": "x"}]}]}}}}),
            adopt: true,
            notes: Vec::new(),
        }
    }

    #[test]
    fn secret_looking_values_become_the_placeholder_in_keys_and_patch_and_others_stay() {
        let mut e = entry();
        let replaced = mask_entry(&mut e);
        let text = super::super::write::spec_text("s", "ns", &[e.clone()], &[]);
        assert!(
            !text.contains("kst-import-secret") && !text.contains("kst-patch-secret"),
            "{text}"
        );
        let vars: Vec<&str> = replaced.iter().map(|p| p.variable.as_str()).collect();
        assert_eq!(vars, vec!["DB_PASSWORD", "API_KEY"]);
        let env = e.table["env"].as_table().unwrap();
        assert_eq!(env["DB_PASSWORD"].as_str(), Some(NOT_IMPORTED));
        assert_eq!(env["PGDATA"].as_str(), Some("/var/lib/pg"));
        assert_eq!(env["API_TOKEN"]["secret"].as_str(), Some("s"));
        assert_eq!(env["EMPTY_SECRET"].as_str(), Some(""));
        let init = &e.patch["spec"]["template"]["spec"]["initContainers"][0]["env"];
        assert_eq!(init[0]["value"], NOT_IMPORTED);
        assert_eq!(init[1]["value"], "x");
        // The spec loader refuses the placeholder at its place.
        let err = crate::spec::load("imported.toml", &text, "s").unwrap_err();
        let lines = err.lines().join("\n");
        assert!(lines.contains("statefulset[0].env.DB_PASSWORD"), "{lines}");
        assert!(
            lines
                .contains("statefulset[0].patch.spec.template.spec.initContainers[0].env[0].value"),
            "{lines}"
        );
        // Messages built from the values lose them.
        assert_eq!(
            scrub("Invalid value: \"kst-import-secret\"", &replaced),
            format!("Invalid value: \"{NOT_IMPORTED}\"")
        );
        // Claims and other kinds are left alone.
        let mut claim = Entry {
            kind: Kind::PersistentVolumeClaim,
            ..entry()
        };
        assert!(mask_entry(&mut claim).is_empty());
    }

    #[test]
    fn the_warning_names_the_variables_and_how_to_supply_them() {
        let mut e = entry();
        let replaced = mask_entry(&mut e);
        assert_eq!(
            warnings(&replaced, "demo"),
            vec![format!(
                "Warning: statefulset/db: env DB_PASSWORD, API_KEY looked secret and were not imported: the spec says {NOT_IMPORTED:?}, which plan refuses. Replace it by the value (plans mask it), or create a Secret and refer to it: kubectl create secret generic db-env -n demo --from-literal=DB_PASSWORD=… --from-literal=API_KEY=…, then DB_PASSWORD = {{ secret = \"db-env\", key = \"DB_PASSWORD\" }}"
            )]
        );
        let remark = note(&replaced).unwrap();
        assert!(remark.contains("DB_PASSWORD, API_KEY"), "{remark}");
        assert!(!remark.contains("kst-"), "{remark}");
        assert!(note(&[]).is_none());
    }
}
