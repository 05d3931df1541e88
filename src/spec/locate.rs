//! Finds where in the spec file a field of a generated object came from, so that an error the
//! API server finds (an unknown field in a `patch`, an invalid value) points at the spec's
//! `file:line:column` and key, like the spec's own errors.

use super::{Spec, SpecIssue};
use toml::de::{DeTable, DeValue};

/// The spec issue for `field` (a dotted path in the object, e.g.
/// `spec.template.spec.terminationGracePeriod`) of the object defined at `origin`
/// (`statefulset[0]`, `claim[1]`, `statefulset[0].service`). Points at the key inside the
/// object's `patch` table when the patch sets it, else at the object's table.
pub fn locate_field(spec: &Spec, origin: &str, field: &str, message: &str) -> Option<SpecIssue> {
    let (table, index) = parse_origin(origin)?;
    let doc = DeTable::parse(&spec.source_text).ok()?;
    let array = doc.get_ref().get(table)?;
    let DeValue::Array(items) = array.get_ref() else {
        return None;
    };
    let item = items.get(index)?;
    let DeValue::Table(object) = item.get_ref() else {
        return None;
    };
    let base = format!("{table}[{index}]");
    let mut span = item.span();
    let mut key = base.clone();
    if let Some(patch) = object.get("patch") {
        let mut current = patch;
        let mut path = format!("{base}.patch");
        let mut found = true;
        for part in field.split('.').filter(|p| !p.is_empty()) {
            let DeValue::Table(t) = current.get_ref() else {
                found = false;
                break;
            };
            match t.iter().find(|(k, _)| k.get_ref() == part) {
                Some((k, v)) => {
                    path = format!("{path}.{part}");
                    span = k.span();
                    current = v;
                }
                None => {
                    found = false;
                    break;
                }
            }
        }
        if found {
            key = path;
        } else if key == base {
            // The patch exists but does not set this exact field: point at the deepest match.
            key = path;
        }
    }
    Some(SpecIssue::new(key, Some(span), message.to_string()).label("the API server refused this"))
}

fn parse_origin(origin: &str) -> Option<(&str, usize)> {
    let (table, rest) = origin.split_once('[')?;
    let index = rest.split(']').next()?.parse().ok()?;
    Some((table, index))
}

/// The field named by an API server message about an unknown field: strict decoding
/// (`unknown field "spec.x"`) or server-side apply (`.spec.x: field not declared in schema`).
pub fn unknown_field(message: &str) -> Option<String> {
    if let Some(rest) = message.split("unknown field \"").nth(1) {
        return rest.split('"').next().map(str::to_string);
    }
    let before = message.split(": field not declared in schema").next()?;
    if before.len() == message.len() {
        return None;
    }
    let field = before.rsplit(' ').next()?.trim_start_matches('.');
    (!field.is_empty()).then(|| field.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_unknown_fields_in_both_server_messages() {
        assert_eq!(
            unknown_field("StatefulSet in version \"v1\" cannot be handled as a StatefulSet: strict decoding error: unknown field \"spec.template.spec.terminationGracePeriod\"").as_deref(),
            Some("spec.template.spec.terminationGracePeriod")
        );
        assert_eq!(
            unknown_field("failed to create typed patch object (t1/db; apps/v1, Kind=StatefulSet): .spec.template.spec.x: field not declared in schema").as_deref(),
            Some("spec.template.spec.x")
        );
        assert_eq!(unknown_field("something else"), None);
    }

    #[test]
    fn points_at_the_patch_key() {
        let text = "[[claim]]\nname = \"a\"\nsize = \"1Gi\"\n\n[[statefulset]]\nname = \"db\"\nimage = \"x\"\n[statefulset.patch.spec.template.spec]\nterminationGracePeriod = 60\n";
        let spec = crate::spec::load("s.toml", text, "s").unwrap();
        let issue = locate_field(
            &spec,
            "statefulset[0]",
            "spec.template.spec.terminationGracePeriod",
            "unknown field",
        )
        .unwrap();
        assert_eq!(
            issue.key,
            "statefulset[0].patch.spec.template.spec.terminationGracePeriod"
        );
        assert_eq!(issue.line_col(text), Some((9, 1)));
        let issue = locate_field(&spec, "claim[0]", "spec.foo", "bad").unwrap();
        assert_eq!(issue.key, "claim[0]");
        assert_eq!(issue.line_col(text).map(|l| l.0), Some(1));
    }
}
