//! Finds where in the spec file a key, or a field of a generated object, comes from, so that
//! every error — the validator's, and those the API server finds (an unknown field in a `patch`,
//! an invalid value) — points at the spec's `file:line:column` and key.
//!
//! Key paths are written `statefulset[0].volume_claim[1].size`; keys that are not bare TOML keys
//! are quoted: `labels."app.kubernetes.io/managed-by"`.

use super::{Spec, SpecIssue};
use crate::gateway::ApiFailure;
use crate::kinds::Kind;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One part of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Parses `a[0].b."c.d"[2]` into its parts.
pub fn parse_path(path: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    let mut chars = path.chars().peekable();
    let mut key = String::new();
    let flush = |key: &mut String, out: &mut Vec<Seg>| {
        if !key.is_empty() {
            out.push(Seg::Key(std::mem::take(key)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    key.push(c);
                }
                out.push(Seg::Key(std::mem::take(&mut key)));
            }
            '.' => flush(&mut key, &mut out),
            '[' => {
                flush(&mut key, &mut out);
                let mut inner = String::new();
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    inner.push(c);
                }
                match inner.parse() {
                    Ok(i) => out.push(Seg::Index(i)),
                    Err(_) => out.push(Seg::Key(inner)),
                }
            }
            c => key.push(c),
        }
    }
    flush(&mut key, &mut out);
    out
}

/// Renders parts as a key path, quoting keys that are not bare TOML keys.
pub fn render_path(segs: &[Seg]) -> String {
    let mut out = String::new();
    for seg in segs {
        match seg {
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&quote_key(k));
            }
        }
    }
    out
}

/// `k`, or `"k"` when it is not a bare TOML key.
pub fn quote_key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

/// Where a key path was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The parts that exist in the file (all of them when the path was found whole).
    pub matched: usize,
    /// The span of the last matched key (or array item).
    pub key: Range<usize>,
    /// The span of the last matched value.
    pub value: Range<usize>,
}

/// Finds the deepest existing prefix of `segs` in the parsed document.
pub fn find(doc: &Spanned<DeTable<'_>>, segs: &[Seg]) -> Found {
    let mut found = Found {
        matched: 0,
        key: 0..0,
        value: 0..0,
    };
    let mut current: Option<&Spanned<DeValue<'_>>> = None;
    for (n, seg) in segs.iter().enumerate() {
        let next = match (current.map(|c| c.get_ref()), seg) {
            (None, Seg::Key(k)) => doc
                .get_ref()
                .iter()
                .find(|(key, _)| key.get_ref() == k)
                .map(|(key, v)| (key.span(), v)),
            (Some(DeValue::Table(t)), Seg::Key(k)) => t
                .iter()
                .find(|(key, _)| key.get_ref() == k)
                .map(|(key, v)| (key.span(), v)),
            (Some(DeValue::Array(a)), Seg::Index(i)) => a.get(*i).map(|v| (v.span(), v)),
            _ => None,
        };
        let Some((key, value)) = next else {
            break;
        };
        found = Found {
            matched: n + 1,
            key,
            value: value.span(),
        };
        current = Some(value);
    }
    found
}

/// Gives every issue without a span the position of its key path (the deepest part of it that
/// the file has; the start of the file at worst), so that every message has a position.
pub fn fill_spans(text: &str, issues: &mut [SpecIssue]) {
    if issues.iter().all(|i| i.span.is_some()) {
        return;
    }
    let doc = DeTable::parse(text).ok();
    for issue in issues.iter_mut().filter(|i| i.span.is_none()) {
        let span = match &doc {
            Some(doc) => {
                let segs = parse_path(&issue.key);
                let found = find(doc, &segs);
                if found.matched == segs.len() && !issue.at_key {
                    found.value
                } else {
                    found.key
                }
            }
            None => 0..0,
        };
        issue.span = Some(miette::SourceSpan::new(span.start.into(), span.len()));
    }
}

/// The spec issue for an error the API server found in the object defined at `origin`
/// (`statefulset[0]`, `claim[1]`, `statefulset[0].service`): the field named by its causes (or
/// by the message of an unknown-field error) is traced back to the key of the spec it comes
/// from — inside the object's `patch` when the patch sets it, else through the known mapping of
/// generated fields (`spec.minReadySeconds` → `statefulset[0].min_ready_seconds`), else the
/// object's table.
pub fn locate_failure(spec: &Spec, origin: &str, kind: Kind, f: &ApiFailure) -> Option<SpecIssue> {
    let mut fields: Vec<(String, String)> = f
        .causes
        .iter()
        .filter(|c| !c.field.is_empty())
        .map(|c| {
            (
                c.field.trim_start_matches('.').to_string(),
                c.message.clone(),
            )
        })
        .collect();
    if let Some(field) = field_in_message(&f.message) {
        fields.insert(0, (field, f.message.clone()));
    }
    let message = f.text();
    let (field, detail) = fields.first()?;
    Some(locate_field_with(
        spec, origin, kind, field, detail, &message,
    ))
}

/// The spec issue for `field` (a dotted path in the object, e.g.
/// `spec.template.spec.terminationGracePeriod`) of the object defined at `origin`.
pub fn locate_field(spec: &Spec, origin: &str, field: &str, message: &str) -> Option<SpecIssue> {
    let kind = if origin.starts_with("storage_class") {
        Kind::StorageClass
    } else if origin.starts_with("volume") {
        Kind::PersistentVolume
    } else if origin.starts_with("claim") {
        Kind::PersistentVolumeClaim
    } else if origin.ends_with(".service") {
        Kind::Service
    } else if origin.starts_with("statefulset") {
        Kind::StatefulSet
    } else {
        Kind::Namespace
    };
    Some(locate_field_with(
        spec, origin, kind, field, message, message,
    ))
}

fn locate_field_with(
    spec: &Spec,
    origin: &str,
    kind: Kind,
    field: &str,
    detail: &str,
    message: &str,
) -> SpecIssue {
    let doc = DeTable::parse(&spec.source_text).ok();
    let field_segs = parse_path(field);
    let base: Vec<Seg> = parse_path(origin.trim_end_matches(".service"));
    let mut candidates: Vec<Vec<Seg>> = Vec::new();
    // 1. The object's patch, when it sets the field (or a part of it).
    let mut in_patch = base.clone();
    in_patch.push(Seg::Key("patch".into()));
    if kind != Kind::Service {
        let mut full = in_patch.clone();
        full.extend(field_segs.iter().cloned());
        candidates.push(full);
    }
    // 2. The spec key the field is generated from.
    if let Some(rel) = spec_key(spec, &base, kind, &field_segs, detail) {
        candidates.push(rel);
    }
    let mut best: Option<(Vec<Seg>, Found)> = None;
    if let Some(doc) = &doc {
        for candidate in candidates {
            let found = find(doc, &candidate);
            let whole = found.matched == candidate.len();
            let in_patch_prefix =
                candidate.starts_with(&in_patch) && found.matched > in_patch.len();
            if whole || in_patch_prefix {
                let segs = candidate[..found.matched].to_vec();
                best = Some((segs, found));
                break;
            }
        }
        if best.is_none() {
            let found = find(doc, &base);
            best = Some((base.clone(), found));
        }
    }
    let (segs, found) = best.unwrap_or((
        base.clone(),
        Found {
            matched: 0,
            key: 0..0,
            value: 0..0,
        },
    ));
    let span = if segs != base { found.key } else { found.value };
    SpecIssue::new(render_path(&segs), Some(span), message.to_string())
        .label("the API server refused this")
}

/// The spec key (absolute parts) a generated field comes from, when the mapping is known.
fn spec_key(
    spec: &Spec,
    base: &[Seg],
    kind: Kind,
    field: &[Seg],
    detail: &str,
) -> Option<Vec<Seg>> {
    let k = |s: &str| Seg::Key(s.to_string());
    let keys: Vec<String> = field
        .iter()
        .map(|s| match s {
            Seg::Key(k) => k.clone(),
            Seg::Index(i) => format!("[{i}]"),
        })
        .collect();
    let path: Vec<&str> = keys.iter().map(String::as_str).collect();
    let idx = |s: &str| s.trim_matches(['[', ']']).parse::<usize>().ok();
    let mut rel: Vec<Seg> = Vec::new();
    let sts_index = match base {
        [Seg::Key(t), Seg::Index(i)] if t == "statefulset" => Some(*i),
        _ => None,
    };
    let labels =
        |rel: &mut Vec<Seg>, own_labels: Option<&std::collections::BTreeMap<String, String>>| {
            // An invalid label names its key or value in the message: find which table sets it.
            let quoted: Vec<&str> = detail.split('"').skip(1).step_by(2).collect();
            let hit = |m: &std::collections::BTreeMap<String, String>| {
                m.iter()
                    .find(|(key, v)| quoted.iter().any(|q| q == key || q == v))
                    .map(|(key, _)| key.clone())
            };
            if let Some(key) = own_labels.and_then(hit) {
                rel.extend([k("labels"), Seg::Key(key)]);
                return None;
            }
            if let Some(key) = hit(&spec.labels) {
                return Some(vec![k("labels"), Seg::Key(key)]);
            }
            rel.push(k("labels"));
            None
        };
    match kind {
        Kind::Namespace => return spec.namespace.as_ref().map(|_| vec![k("namespace")]),
        Kind::StatefulSet | Kind::Service => {
            let sts = spec.statefulsets.get(sts_index?)?.get_ref();
            let container = ["spec", "template", "spec", "containers", "[0]"];
            match path.as_slice() {
                ["metadata", "name", ..] if kind == Kind::Service && sts.service.is_some() => {
                    rel.push(k("service"))
                }
                ["metadata", "name", ..] => rel.push(k("name")),
                ["metadata", "labels", ..] | ["spec", "template", "metadata", "labels", ..] => {
                    if let Some(top) = labels(&mut rel, Some(&sts.labels)) {
                        return Some(top);
                    }
                }
                ["spec", "ports", n, ..] if kind == Kind::Service => {
                    rel.push(k("ports"));
                    rel.extend(idx(n).map(Seg::Index));
                }
                ["spec", "ports", ..] if kind == Kind::Service => rel.push(k("ports")),
                ["spec", "replicas", ..] => rel.push(k("replicas")),
                ["spec", "minReadySeconds", ..] => rel.push(k("min_ready_seconds")),
                ["spec", "serviceName", ..] => rel.push(k("service")),
                ["spec", "podManagementPolicy", ..] => rel.push(k("pod_management_policy")),
                ["spec", "updateStrategy", "rollingUpdate", "partition", ..] => {
                    rel.extend([k("update_strategy"), k("partition")])
                }
                [
                    "spec",
                    "updateStrategy",
                    "rollingUpdate",
                    "maxUnavailable",
                    ..,
                ] => rel.extend([k("update_strategy"), k("max_unavailable")]),
                ["spec", "updateStrategy", ..] => rel.push(k("update_strategy")),
                [
                    "spec",
                    "persistentVolumeClaimRetentionPolicy",
                    "whenDeleted",
                    ..,
                ] => rel.extend([k("retention"), k("when_deleted")]),
                [
                    "spec",
                    "persistentVolumeClaimRetentionPolicy",
                    "whenScaled",
                    ..,
                ] => rel.extend([k("retention"), k("when_scaled")]),
                ["spec", "persistentVolumeClaimRetentionPolicy", ..] => rel.push(k("retention")),
                ["spec", "volumeClaimTemplates", n, rest @ ..] => {
                    rel.push(k("volume_claim"));
                    rel.extend(idx(n).map(Seg::Index));
                    match rest {
                        ["spec", "resources", ..] => rel.push(k("size")),
                        ["spec", "accessModes", ..] => rel.push(k("access_modes")),
                        ["spec", "storageClassName", ..] => rel.push(k("class")),
                        ["spec", "volumeMode", ..] => rel.push(k("volume_mode")),
                        ["spec", "selector", ..] => rel.push(k("selector")),
                        ["metadata", "name", ..] => rel.push(k("name")),
                        ["metadata", "labels", ..] => rel.push(k("labels")),
                        _ => {}
                    }
                }
                [a, b, c, d, e, rest @ ..] if [*a, *b, *c, *d, *e] == container => match rest {
                    ["image", ..] => rel.push(k("image")),
                    ["command", ..] => rel.push(k("command")),
                    ["args", ..] => rel.push(k("args")),
                    ["env", n, ..] => {
                        rel.push(k("env"));
                        if let Some(name) = idx(n).and_then(|n| sts.env.keys().nth(n)) {
                            rel.push(Seg::Key(name.clone()));
                        }
                    }
                    ["env", ..] => rel.push(k("env")),
                    ["ports", n, ..] => {
                        rel.push(k("ports"));
                        rel.extend(idx(n).map(Seg::Index));
                    }
                    ["ports", ..] => rel.push(k("ports")),
                    ["resources", section @ ("requests" | "limits"), rest @ ..] => {
                        rel.extend([k("resources"), k(section)]);
                        let named = rest.first().map(|r| r.to_string()).or_else(|| {
                            let map = if *section == "requests" {
                                &sts.resources.requests
                            } else {
                                &sts.resources.limits
                            };
                            map.keys().find(|r| detail.contains(r.as_str())).cloned()
                        });
                        rel.extend(named.map(Seg::Key));
                    }
                    ["resources", ..] => rel.push(k("resources")),
                    ["volumeMounts", n, ..] => {
                        let n = idx(n)?;
                        let templates = sts.volume_claims.len();
                        if n < templates {
                            rel.extend([k("volume_claim"), Seg::Index(n), k("mount")]);
                        } else {
                            rel.extend([k("mount"), Seg::Index(n - templates)]);
                        }
                    }
                    _ => {}
                },
                ["spec", "template", "spec", "volumes", n, ..] => {
                    rel.extend([k("mount")]);
                    rel.extend(idx(n).map(Seg::Index));
                }
                _ => {}
            }
        }
        Kind::PersistentVolumeClaim => {
            let claim = match base {
                [_, Seg::Index(i)] => spec.claims.get(*i).map(|c| c.get_ref()),
                _ => None,
            };
            match path.as_slice() {
                ["metadata", "name", ..] => rel.push(k("name")),
                ["metadata", "labels", ..] => {
                    if let Some(top) = labels(&mut rel, claim.map(|c| &c.labels)) {
                        return Some(top);
                    }
                }
                ["spec", "resources", ..] => rel.push(k("size")),
                ["spec", "accessModes", ..] => rel.push(k("access_modes")),
                ["spec", "storageClassName", ..] => rel.push(k("class")),
                ["spec", "volumeName", ..] => rel.push(k("volume")),
                ["spec", "selector", ..] => rel.push(k("selector")),
                ["spec", "volumeMode", ..] => rel.push(k("volume_mode")),
                _ => {}
            }
        }
        Kind::PersistentVolume => {
            let vol = match base {
                [_, Seg::Index(i)] => spec.volumes.get(*i).map(|v| v.get_ref()),
                _ => None,
            };
            let source =
                |name: &str, fields: &[(&str, &str)], rest: &[&str], rel: &mut Vec<Seg>| {
                    rel.push(k(name));
                    if let Some(f) = rest.first()
                        && let Some((_, spec_name)) = fields.iter().find(|(api, _)| api == f)
                    {
                        rel.push(k(spec_name));
                    }
                };
            match path.as_slice() {
                ["metadata", "name", ..] => rel.push(k("name")),
                ["metadata", "labels", ..] => {
                    if let Some(top) = labels(&mut rel, vol.map(|v| &v.labels)) {
                        return Some(top);
                    }
                }
                ["spec", "capacity", ..] => rel.push(k("capacity")),
                ["spec", "accessModes", ..] => rel.push(k("access_modes")),
                ["spec", "persistentVolumeReclaimPolicy", ..] => rel.push(k("reclaim_policy")),
                ["spec", "storageClassName", ..] => rel.push(k("class")),
                ["spec", "nodeAffinity", ..] => rel.push(k("node")),
                ["spec", "mountOptions", ..] => rel.push(k("mount_options")),
                ["spec", "volumeMode", ..] => rel.push(k("volume_mode")),
                ["spec", "local", rest @ ..] => source(
                    "local",
                    &[("path", "path"), ("fsType", "fs_type")],
                    rest,
                    &mut rel,
                ),
                ["spec", "hostPath", rest @ ..] => source(
                    "host_path",
                    &[("path", "path"), ("type", "type")],
                    rest,
                    &mut rel,
                ),
                ["spec", "nfs", rest @ ..] => source(
                    "nfs",
                    &[
                        ("server", "server"),
                        ("path", "path"),
                        ("readOnly", "read_only"),
                    ],
                    rest,
                    &mut rel,
                ),
                ["spec", "csi", rest @ ..] => source(
                    "csi",
                    &[
                        ("driver", "driver"),
                        ("volumeHandle", "volume_handle"),
                        ("fsType", "fs_type"),
                        ("volumeAttributes", "attributes"),
                    ],
                    rest,
                    &mut rel,
                ),
                _ => {}
            }
        }
        Kind::StorageClass => {
            let sc = match base {
                [_, Seg::Index(i)] => spec.storage_classes.get(*i).map(|s| s.get_ref()),
                _ => None,
            };
            match path.as_slice() {
                ["metadata", "name", ..] => rel.push(k("name")),
                ["metadata", "labels", ..] => {
                    if let Some(top) = labels(&mut rel, sc.map(|s| &s.labels)) {
                        return Some(top);
                    }
                }
                ["provisioner", ..] => rel.push(k("provisioner")),
                ["parameters", ..] => rel.push(k("parameters")),
                ["reclaimPolicy", ..] => rel.push(k("reclaim_policy")),
                ["volumeBindingMode", ..] => rel.push(k("binding_mode")),
                ["mountOptions", ..] => rel.push(k("mount_options")),
                ["allowVolumeExpansion", ..] => rel.push(k("allow_volume_expansion")),
                _ => {}
            }
        }
        // Deployments, DaemonSets and snapshots: the object's own table (no deeper mapping yet);
        // ConfigMaps, Leases and Pods are not objects of the spec.
        Kind::Deployment
        | Kind::DaemonSet
        | Kind::VolumeSnapshot
        | Kind::ConfigMap
        | Kind::Lease
        | Kind::Pod => {}
    }
    if rel.is_empty() {
        return None;
    }
    let mut out = base.to_vec();
    out.extend(rel);
    Some(out)
}

/// The field named by an API server message that has no causes: strict decoding
/// (`unknown field "spec.x"`), a typed server-side apply (`…): .spec.x: field not declared in
/// schema`, `…): .spec.x: expected numeric (int or float), got string`) or JSON decoding
/// (`cannot unmarshal string into Go struct field PodSpec.spec.x of type int64`).
pub fn field_in_message(message: &str) -> Option<String> {
    if let Some(rest) = message.split("unknown field \"").nth(1) {
        return rest.split('"').next().map(str::to_string);
    }
    if let Some(rest) = message.split("Go struct field ").nth(1) {
        let path = rest.split(" of type").next()?;
        // `PodSpec.spec.template.spec.x`: the Go type first, then the path.
        let field = path.split_once('.').map_or(path, |(_, f)| f);
        return (!field.is_empty()).then(|| field.to_string());
    }
    if let Some(rest) = message.split("): .").nth(1) {
        let field = rest.split(": ").next()?;
        return (!field.is_empty() && !field.contains(' ')).then(|| field.to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::Cause;

    #[test]
    fn key_paths_round_trip() {
        let segs = parse_path("statefulset[0].labels.\"app.kubernetes.io/name\"");
        assert_eq!(
            segs,
            vec![
                Seg::Key("statefulset".into()),
                Seg::Index(0),
                Seg::Key("labels".into()),
                Seg::Key("app.kubernetes.io/name".into())
            ]
        );
        assert_eq!(
            render_path(&segs),
            "statefulset[0].labels.\"app.kubernetes.io/name\""
        );
        assert_eq!(
            parse_path("spec.resources.requests[storage]"),
            vec![
                Seg::Key("spec".into()),
                Seg::Key("resources".into()),
                Seg::Key("requests".into()),
                Seg::Key("storage".into())
            ]
        );
    }

    #[test]
    fn finds_the_field_in_server_messages() {
        assert_eq!(
            field_in_message("StatefulSet in version \"v1\" cannot be handled as a StatefulSet: strict decoding error: unknown field \"spec.template.spec.terminationGracePeriod\"").as_deref(),
            Some("spec.template.spec.terminationGracePeriod")
        );
        assert_eq!(
            field_in_message("failed to create typed patch object (t1/db; apps/v1, Kind=StatefulSet): .spec.template.spec.x: field not declared in schema").as_deref(),
            Some("spec.template.spec.x")
        );
        assert_eq!(
            field_in_message("failed to create typed patch object (t1/db; apps/v1, Kind=StatefulSet): .spec.template.spec.terminationGracePeriodSeconds: expected numeric (int or float), got string").as_deref(),
            Some("spec.template.spec.terminationGracePeriodSeconds")
        );
        assert_eq!(
            field_in_message("StatefulSet in version \"v1\" cannot be handled as a StatefulSet: json: cannot unmarshal string into Go struct field PodSpec.spec.template.spec.terminationGracePeriodSeconds of type int64").as_deref(),
            Some("spec.template.spec.terminationGracePeriodSeconds")
        );
        assert_eq!(field_in_message("something else"), None);
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

    fn invalid(field: &str, message: &str) -> ApiFailure {
        ApiFailure {
            code: 422,
            reason: "Invalid".into(),
            message: format!("StatefulSet.apps \"db\" is invalid: {field}: {message}"),
            causes: vec![Cause {
                reason: "FieldValueInvalid".into(),
                field: field.into(),
                message: message.into(),
            }],
            may_have_landed: false,
        }
    }

    #[test]
    fn server_causes_map_back_to_spec_keys() {
        let text = "labels = { team = \"ab\" }\n\n[[statefulset]]\nname = \"db\"\nimage = \"x\"\nmin_ready_seconds = -1\nenv = { B = \"1\", A = \"2\" }\nresources = { requests = { cpu = \"2\" }, limits = { cpu = \"1\" } }\n[[statefulset.volume_claim]]\nname = \"data\"\nsize = \"1Gi\"\nmount = \"/d\"\n";
        let spec = crate::spec::load("s.toml", text, "s").unwrap();
        let at = |field: &str, message: &str| {
            let issue = locate_failure(
                &spec,
                "statefulset[0]",
                Kind::StatefulSet,
                &invalid(field, message),
            )
            .unwrap();
            (issue.key.clone(), issue.line_col(text).unwrap())
        };
        assert_eq!(
            at(
                "spec.minReadySeconds",
                "Invalid value: -1: must be greater than or equal to 0"
            ),
            ("statefulset[0].min_ready_seconds".into(), (6, 1))
        );
        assert_eq!(
            at(
                "spec.template.spec.containers[0].env[1].name",
                "Invalid value"
            ),
            ("statefulset[0].env.A".into(), (7, 18))
        );
        assert_eq!(
            at(
                "spec.template.spec.containers[0].resources.requests",
                "Invalid value: \"2\": must be less than or equal to cpu limit of 1"
            ),
            ("statefulset[0].resources.requests.cpu".into(), (8, 28))
        );
        assert_eq!(
            at(
                "spec.volumeClaimTemplates[0].spec.resources[storage]",
                "bad"
            ),
            ("statefulset[0].volume_claim[0].size".into(), (11, 1))
        );
        assert_eq!(
            at(
                "metadata.labels",
                "Invalid value: \"ab\": a valid label must be …"
            ),
            ("labels.team".into(), (1, 12))
        );
    }
}
