//! Saved plans (`plan --out plan.json`, read back by `apply plan.json`): reading one is parsing
//! input from outside, so every way it can be wrong — not UTF-8, not JSON, not a plan, another
//! format, edited by hand so that its parts contradict each other — is an error that names the
//! file and the line and column or the key, and never a panic later in the executor.

use super::{FORMAT_VERSION, Plan};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;

/// The environment variable holding the key that signs saved plans (optional; see [`sign`]).
pub const PLAN_KEY: &str = "KUBECTL_STATEFUL_PLAN_KEY";
const SIGNATURE: &str = "signature";
const SCHEME: &str = "hmac-sha256:";

/// The key from [`PLAN_KEY`], when it is set and not empty.
pub fn plan_key() -> Option<Vec<u8>> {
    std::env::var_os(PLAN_KEY)
        .map(|k| k.into_encoded_bytes())
        .filter(|k| !k.is_empty())
}

/// The HMAC-SHA256 of a plan document without its signature, in its compact serialization (the
/// same bytes whether the file was pretty-printed or not).
fn mac(doc: &Value, key: &[u8]) -> String {
    let mut unsigned = doc.clone();
    if let Some(o) = unsigned.as_object_mut() {
        o.remove(SIGNATURE);
    }
    let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    m.update(&serde_json::to_vec(&unsigned).expect("plans serialize"));
    let bytes = m.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{SCHEME}{hex}")
}

/// Signs a saved plan's text with `key`: the same document with a `signature` (an HMAC-SHA256
/// of the rest). A CI pipeline that sets [`PLAN_KEY`] in its plan and apply jobs makes apply
/// refuse a plan file that is unsigned or was changed after it was written.
pub fn sign(text: &str, key: &[u8]) -> String {
    let mut doc: Value = serde_json::from_str(text).expect("a plan file is JSON");
    let signature = mac(&doc, key);
    if let Some(o) = doc.as_object_mut() {
        o.insert(SIGNATURE.into(), Value::from(signature));
    }
    serde_json::to_string_pretty(&doc).expect("plans serialize") + "\n"
}

/// With a key: the plan must carry the signature of its content made with that key.
fn verify(file: &str, doc: &Value, key: &[u8]) -> Result<(), Box<SavedPlanError>> {
    let help = format!(
        "{PLAN_KEY} is set, so only plans written by `plan --out` with the same key are applied; make a new plan"
    );
    let Some(signature) = doc.get(SIGNATURE).and_then(Value::as_str) else {
        return Err(Box::new(SavedPlanError {
            help,
            ..SavedPlanError::new(file, "the plan is not signed").key(SIGNATURE)
        }));
    };
    let want = mac(doc, key);
    // Compared in constant time (a signature guessed byte by byte leaks nothing).
    let same = signature.len() == want.len()
        && signature
            .bytes()
            .zip(want.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(Box::new(SavedPlanError {
            help,
            ..SavedPlanError::new(
                file,
                "the plan's signature does not match its content: it was changed after it was written, or signed with another key",
            )
            .key(SIGNATURE)
        }))
    }
}

/// Why a saved plan cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error("{file}{}: {message}", position(.line, .column, .key))]
#[diagnostic(help("{help}"))]
pub struct SavedPlanError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The key path inside the document, when the problem is one part of it (`steps[2].manifest`).
    pub key: Option<String>,
    pub message: String,
    pub help: String,
}

fn position(line: &Option<usize>, column: &Option<usize>, key: &Option<String>) -> String {
    let mut out = String::new();
    if let (Some(l), Some(c)) = (line, column) {
        out.push_str(&format!(":{l}:{c}"));
    }
    if let Some(k) = key {
        out.push_str(&format!(": {k}"));
    }
    out
}

const NOT_A_PLAN: &str = "a saved plan is the file written by `kubectl stateful plan -f SPEC --out PLANFILE`; make a new one";

impl SavedPlanError {
    fn new(file: &str, message: impl Into<String>) -> Self {
        SavedPlanError {
            file: file.to_string(),
            line: None,
            column: None,
            key: None,
            message: message.into(),
            help: NOT_A_PLAN.into(),
        }
    }

    fn at(mut self, line: usize, column: usize) -> Self {
        self.line = Some(line.max(1));
        self.column = Some(column.max(1));
        self
    }

    fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
}

/// Reads a saved plan from `bytes` (the content of `file`) and checks that it is whole, and
/// signed with the key of [`PLAN_KEY`] when that is set.
pub fn parse(file: &str, bytes: &[u8]) -> Result<Plan, Box<SavedPlanError>> {
    parse_with_key(file, bytes, plan_key().as_deref())
}

/// [`parse`], with the signing key given.
pub fn parse_with_key(
    file: &str,
    bytes: &[u8],
    key: Option<&[u8]>,
) -> Result<Plan, Box<SavedPlanError>> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.valid_up_to();
            let before = &bytes[..at];
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            let line_start = before
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            let column = String::from_utf8_lossy(&before[line_start..])
                .chars()
                .count()
                + 1;
            return Err(Box::new(
                SavedPlanError::new(
                    file,
                    format!(
                        "not a saved plan: byte 0x{:02X} is not UTF-8 text",
                        bytes[at]
                    ),
                )
                .at(line, column),
            ));
        }
    };
    let masks = [crate::plan::mask::MASK, crate::plan::mask::MASK_CHANGED];
    if let Some(at) = masks.iter().filter_map(|m| text.find(m)).min() {
        let before = &text[..at];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        return Err(Box::new(SavedPlanError {
            help: "save plans with `kubectl stateful plan -f SPEC --out PLANFILE`: only that file keeps the values apply sends".into(),
            ..SavedPlanError::new(
                file,
                "this plan was printed with sensitive values masked (plan -o json), so it cannot be applied",
            )
            .at(line, column)
        }));
    }
    if text.trim().is_empty() {
        return Err(Box::new(
            SavedPlanError::new(file, "not a saved plan: the file is empty").at(1, 1),
        ));
    }
    let doc: Value = serde_json::from_str(text).map_err(|e| {
        Box::new(
            SavedPlanError::new(
                file,
                format!("not a saved plan: it is not JSON: {}", json_message(&e)),
            )
            .at(e.line(), e.column()),
        )
    })?;
    if let Some((at, literal)) = oversized_integer(text) {
        let before = &text[..at];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        let shown: String = literal.chars().take(30).collect();
        return Err(Box::new(
            SavedPlanError::new(
                file,
                format!("not a valid saved plan: the integer {shown} is out of range (a plan holds 64-bit integers)"),
            )
            .at(line, column),
        ));
    }
    let Some(object) = doc.as_object() else {
        return Err(Box::new(
            SavedPlanError::new(
                file,
                format!(
                    "not a saved plan: it is a JSON {}, a plan is an object",
                    kind_of(&doc)
                ),
            )
            .at(1, 1),
        ));
    };
    if object.contains_key("error") && !object.contains_key("steps") {
        return Err(Box::new(
            SavedPlanError::new(
                file,
                "this is the report of a plan that failed, not a plan: there is nothing to apply",
            )
            .key("error"),
        ));
    }
    match object.get("format_version") {
        None => {
            return Err(Box::new(SavedPlanError::new(
                file,
                "not a saved plan: it has no format_version (is it a plan from another tool, or `kubectl get -o json` output?)",
            )));
        }
        Some(v) if v.as_u64() != Some(u64::from(FORMAT_VERSION)) => {
            return Err(Box::new(SavedPlanError {
                help: "plans are read only by the version of kubectl-stateful that wrote them (same format); make a new plan".into(),
                ..SavedPlanError::new(
                    file,
                    format!("the plan has format {v}, this version reads format {FORMAT_VERSION}"),
                )
                .key("format_version")
            }));
        }
        Some(_) => {}
    }
    if let Some(key) = key {
        verify(file, &doc, key)?;
    }
    let plan: Plan = serde_json::from_str(text).map_err(|e| {
        SavedPlanError::new(
            file,
            format!("not a valid saved plan: {}", json_message(&e)),
        )
        .at(e.line(), e.column())
    })?;
    check(file, &plan)?;
    Ok(plan)
}

/// The first integer literal (outside strings) that fits neither an i64 nor a u64: JSON
/// readers keep it only approximately, so the plan would not be what was saved.
fn oversized_integer(text: &str) -> Option<(usize, &str)> {
    let bytes = text.as_bytes();
    let (mut i, mut in_string) = (0, false);
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if b == b'-' || b.is_ascii_digit() {
            let start = i;
            i += 1;
            while i < bytes.len() && (bytes[i].is_ascii_digit() || b".eE+-".contains(&bytes[i])) {
                i += 1;
            }
            let literal = &text[start..i];
            let integer = !literal.contains(['.', 'e', 'E']);
            if integer && literal.parse::<i64>().is_err() && literal.parse::<u64>().is_err() {
                return Some((start, literal));
            }
            continue;
        }
        i += 1;
    }
    None
}

/// serde_json's message without its own ` at line L column C` suffix.
fn json_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The parts of a plan must agree: every manifest is the object its step names, in the plan's
/// namespace; the summary counts the steps; the operations are exactly what the steps schedule.
/// A plan edited by hand (or cut short) is refused here rather than half applied.
fn check(file: &str, plan: &Plan) -> Result<(), Box<SavedPlanError>> {
    let edited = |key: String, message: String| {
        Err(Box::new(SavedPlanError {
            help: "the plan was changed after it was saved; make a new one with `kubectl stateful plan --out`".into(),
            ..SavedPlanError::new(file, message).key(key)
        }))
    };
    if crate::spec::check_label(&plan.namespace).is_err() {
        return edited(
            "namespace".into(),
            format!("{:?} is not a namespace name", plan.namespace),
        );
    }
    for (i, step) in plan.steps.iter().enumerate() {
        let id = &step.object;
        let m = &step.manifest;
        let expected_ns = id.kind.namespaced().then_some(plan.namespace.as_str());
        if id.namespace.as_deref() != expected_ns {
            return edited(
                format!("steps[{i}].object.namespace"),
                format!(
                    "{} is not in the plan's namespace {}",
                    id.short(),
                    plan.namespace
                ),
            );
        }
        if m["kind"].as_str() != Some(id.kind.as_str())
            || m["apiVersion"].as_str() != Some(id.kind.api_version().as_str())
            || m.pointer("/metadata/name").and_then(Value::as_str) != Some(id.name.as_str())
            || m.pointer("/metadata/namespace").and_then(Value::as_str) != expected_ns
        {
            return edited(
                format!("steps[{i}].manifest"),
                format!(
                    "the manifest is not the object the step names ({})",
                    id.short()
                ),
            );
        }
        if let Some((key, message)) = unshown(step) {
            return edited(format!("steps[{i}].{key}"), message);
        }
    }
    let fresh = Plan::new(
        plan.stack.clone(),
        plan.namespace.clone(),
        plan.server.clone(),
        plan.steps.clone(),
    );
    if fresh.summary != plan.summary {
        return edited(
            "summary".into(),
            "the summary does not count the plan's steps".into(),
        );
    }
    if fresh.operations != plan.operations {
        let at = fresh
            .operations
            .iter()
            .zip(&plan.operations)
            .position(|(a, b)| a != b)
            .unwrap_or(fresh.operations.len().min(plan.operations.len()));
        return edited(
            format!("operations[{at}]"),
            "the operations are not the ones the steps call for".into(),
        );
    }
    Ok(())
}

/// Where a step's manifest (what apply sends) is not the object its diff shows (`before` →
/// `after`, what the views print and what the user approved): the key inside the step and why.
/// Only paths are named, never values (an environment value may be a secret).
///
/// - create, replace: the plan shows the manifest itself, so it is exactly `after`;
/// - update, adopt: `after` is the server's dry run of the manifest, so every value the
///   manifest sets is there, equal, at the same place (see [`compute::first_unshown`] for the
///   forms the server may give it), among the server's defaults and other managers' fields;
/// - resize: `after` is the live object with the manifest laid over it, the same; and the
///   `retain_manifest` it applies first is made from the manifest;
/// - no-op: nothing is sent, but the manifest is recorded in the inventory as confirmed
///   unchanged (the next plan's fast path trusts it), so it must be what `before` shows; a no-op
///   that leaves an existing object of another owner alone shows it unchanged (`after` is
///   `before`) and its manifest is not that object, on purpose;
/// - delete, release, error: the manifest is not sent (a delete sends the uid precondition, a
///   release a patch made from the live object when it runs) and only names the object.
///
/// Values the views never show ([`normalize`] strips them from both sides: status, volatile
/// metadata, annotations the control plane writes, a volume's `claimRef`) are not compared.
fn unshown(step: &super::Step) -> Option<(&'static str, String)> {
    use super::Action;
    use super::compute;
    use super::normalize::normalize;
    let kind = step.object.kind;
    let not_shown = |path: String| {
        Some((
            "manifest",
            format!("the manifest sets {path} to a value the plan does not show"),
        ))
    };
    let shown = match step.action {
        Action::Delete | Action::Release | Action::Error => return None,
        Action::NoOp => match &step.after {
            Some(after) if Some(after) == step.before.as_ref() => return None,
            Some(_) => {
                return Some((
                    "after",
                    "the step changes nothing but the plan shows a change".into(),
                ));
            }
            None => step.before.as_ref()?,
        },
        _ => match &step.after {
            Some(after) => after,
            None => {
                return Some((
                    "after",
                    format!(
                        "the step {}s the object but the plan shows nothing of what it sends",
                        step.action.as_str()
                    ),
                ));
            }
        },
    };
    if let Some(path) =
        compute::first_unshown(&normalize(kind, &step.manifest, &step.manifest), shown)
    {
        return not_shown(path);
    }
    if matches!(step.action, Action::Create | Action::Replace) {
        // Shown as it is: nothing may be left out either.
        if let Some(path) = compute::diff_paths(shown, &step.manifest)
            .into_iter()
            .next()
        {
            return Some((
                "manifest",
                format!("the manifest differs at {path} from the object the plan shows"),
            ));
        }
    }
    if let Some(retain) = step
        .resize
        .as_ref()
        .and_then(|r| r.retain_manifest.as_ref())
        && *retain != super::build::retain_manifest(&step.manifest, step.before.as_ref())
    {
        return Some((
            "resize.retain_manifest",
            "the manifest the resize applies first is not the step's manifest with whenDeleted: Retain".into(),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::Kind;
    use crate::plan::Action;
    use serde_json::json;

    fn err(text: &str) -> String {
        parse_with_key("plan.json", text.as_bytes(), None)
            .unwrap_err()
            .to_string()
    }

    /// With a key, only a plan signed with it and unchanged since is read; without one, the
    /// signature is not needed.
    #[test]
    fn a_signed_plan_is_read_only_unchanged_and_with_its_key() {
        let plan = Plan::new("s".into(), "ns".into(), "https://x".into(), Vec::new());
        let text = crate::render::plan_file(&plan);
        let signed = sign(&text, b"k1");
        assert!(signed.contains("\"signature\": \"hmac-sha256:"), "{signed}");
        let read = |t: &str, key: Option<&[u8]>| parse_with_key("plan.json", t.as_bytes(), key);
        assert_eq!(read(&signed, Some(b"k1")).unwrap(), plan);
        assert_eq!(read(&signed, None).unwrap(), plan);
        // Reformatted but unchanged: still its signature (the compact form is what is signed).
        let compact =
            serde_json::to_string(&serde_json::from_str::<Value>(&signed).unwrap()).unwrap();
        assert!(read(&compact, Some(b"k1")).is_ok());
        let mismatch = "plan.json: signature: the plan's signature does not match its content";
        let edited = signed.replace("\"stack\": \"s\"", "\"stack\": \"t\"");
        assert_ne!(edited, signed);
        assert!(
            read(&edited, Some(b"k1"))
                .unwrap_err()
                .to_string()
                .starts_with(mismatch)
        );
        assert!(
            read(&signed, Some(b"k2"))
                .unwrap_err()
                .to_string()
                .starts_with(mismatch)
        );
        assert_eq!(
            read(&text, Some(b"k1")).unwrap_err().to_string(),
            "plan.json: signature: the plan is not signed"
        );
    }

    #[test]
    fn every_way_to_be_wrong_names_the_file_and_where() {
        assert_eq!(
            err("{\"format_version\": 4,\n  \"steps\": [}"),
            "plan.json:2:13: not a saved plan: it is not JSON: expected value"
        );
        assert_eq!(
            err("[1]"),
            "plan.json:1:1: not a saved plan: it is a JSON array, a plan is an object"
        );
        assert!(err("{\"apiVersion\": \"v1\"}").contains("it has no format_version"));
        assert_eq!(
            err("{\"format_version\": 1}"),
            "plan.json: format_version: the plan has format 1, this version reads format 4"
        );
        assert!(
            err("{\"format_version\": 4}")
                .starts_with("plan.json:1:21: not a valid saved plan: missing field")
        );
        assert_eq!(
            err("{\"format_version\": 4,\n \"x\": 599999999999999999999432}"),
            "plan.json:2:7: not a valid saved plan: the integer 599999999999999999999432 is out of range (a plan holds 64-bit integers)"
        );
        let bytes = b"{\"a\": \"\xff\"}";
        assert_eq!(
            parse("plan.json", bytes).unwrap_err().to_string(),
            "plan.json:1:8: not a saved plan: byte 0xFF is not UTF-8 text"
        );
    }

    fn object(kind: Kind, name: &str, body: Value) -> Value {
        let mut m = json!({
            "apiVersion": kind.api_version(), "kind": kind.as_str(),
            "metadata": {"name": name, "namespace": "ns",
                         "labels": {"app.kubernetes.io/managed-by": "kubectl-stateful", "kubectl-stateful/stack": "s"}},
        });
        m.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        m
    }

    /// The Deployment the spec describes, with a secret-looking variable, quantities in their
    /// spec form and a volume mounted twice.
    fn web(image: &str) -> Value {
        object(
            Kind::Deployment,
            "web",
            json!({"spec": {"replicas": 2, "minReadySeconds": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{
                    "name": "web", "image": image, "args": ["--port", "80"],
                    "env": [{"name": "DB_PASSWORD", "value": "hunter2"}, {"name": "MODE", "value": "fast"}],
                    "resources": {"requests": {"memory": "1024Mi", "cpu": "0.5"}, "limits": {"cpu": 1}},
                    "volumeMounts": [{"name": "data", "mountPath": "/a"},
                                     {"name": "data", "mountPath": "/b", "readOnly": false}]}],
                    "volumes": [{"name": "data", "emptyDir": {}}]}}}}),
        )
    }

    /// `web` as the server's dry run returns it: defaults around it, quantities in canonical
    /// form, empty values dropped, and a container another writer injected.
    fn web_shown(image: &str) -> Value {
        let mut v = web(image);
        let spec = &mut v["spec"];
        spec.as_object_mut().unwrap().remove("minReadySeconds");
        spec["strategy"] = json!({"type": "RollingUpdate"});
        let pod = &mut spec["template"]["spec"];
        pod["restartPolicy"] = json!("Always");
        pod["volumes"][0]["emptyDir"] = json!({});
        let c = &mut pod["containers"][0];
        c["imagePullPolicy"] = json!("IfNotPresent");
        c["resources"] =
            json!({"requests": {"memory": "1Gi", "cpu": "500m"}, "limits": {"cpu": "1"}});
        c["volumeMounts"][1]
            .as_object_mut()
            .unwrap()
            .remove("readOnly");
        let injected = json!({"name": "proxy", "image": "proxy:1"});
        pod["containers"]
            .as_array_mut()
            .unwrap()
            .insert(0, injected);
        v
    }

    /// What `plan --out` writes for an image update, a create and an object left unchanged.
    fn honest_plan() -> Plan {
        let mut update = crate::plan::ops::tests::step(Kind::Deployment, "web", Action::Update);
        update.manifest = web("nginx:1.27");
        update.before = Some(web_shown("nginx:1.26"));
        update.after = Some(web_shown("nginx:1.27"));
        update.changed_paths = vec!["spec.template.spec.containers[1].image".into()];
        let mut create = crate::plan::ops::tests::step(Kind::ConfigMap, "conf", Action::Create);
        create.manifest = object(Kind::ConfigMap, "conf", json!({"data": {"x": "1"}}));
        create.after = Some(create.manifest.clone());
        let mut same = crate::plan::ops::tests::step(Kind::Service, "web", Action::NoOp);
        same.manifest = object(
            Kind::Service,
            "web",
            json!({"spec": {"ports": [{"port": 80}]}}),
        );
        let mut live = same.manifest.clone();
        live["spec"] = json!({"clusterIP": "10.0.0.7", "type": "ClusterIP",
                              "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]});
        same.before = Some(live);
        Plan::new(
            "s".into(),
            "ns".into(),
            "https://x".into(),
            vec![update, create, same],
        )
    }

    /// The saved `plan` with `edit` made to its JSON, as apply reads it.
    fn edited(plan: &Plan, edit: impl FnOnce(&mut Value)) -> String {
        let mut doc: Value = serde_json::from_str(&crate::render::plan_file(plan)).unwrap();
        edit(&mut doc);
        err(&serde_json::to_string_pretty(&doc).unwrap())
    }

    /// What apply sends is what the plan shows: an honest plan (server defaults, canonical
    /// quantities, fields of other writers, secret values) is read back as saved; a manifest
    /// edited after saving, however its diff was left, is refused at the step, naming the path
    /// and never a value.
    #[test]
    fn a_manifest_that_is_not_what_the_plan_shows_is_refused_at_its_step() {
        let plan = honest_plan();
        let text = crate::render::plan_file(&plan);
        assert!(
            text.contains("hunter2"),
            "a saved plan keeps what apply sends"
        );
        assert_eq!(
            parse_with_key("plan.json", text.as_bytes(), None).unwrap(),
            plan
        );
        let not_shown = |step: usize, path: &str| {
            format!(
                "plan.json: steps[{step}].manifest: the manifest sets {path} to a value the plan does not show"
            )
        };
        let container = "spec.template.spec.containers[0]";
        type Edit = Box<dyn FnOnce(&mut Value)>;
        let cases: Vec<(Edit, String)> = vec![
            (
                Box::new(|d| d["steps"][0]["manifest"]["spec"]["template"]["spec"]["containers"][0]["image"] = json!("evil")),
                not_shown(0, &format!("{container}.image")),
            ),
            (
                Box::new(|d| d["steps"][0]["manifest"]["spec"]["template"]["spec"]["hostNetwork"] = json!(true)),
                not_shown(0, "spec.template.spec.hostNetwork"),
            ),
            (
                Box::new(|d| d["steps"][0]["manifest"]["spec"]["template"]["spec"]["securityContext"] = json!({"runAsUser": 0})),
                not_shown(0, "spec.template.spec.securityContext.runAsUser"),
            ),
            (
                Box::new(|d| d["steps"][0]["manifest"]["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = json!("stolen")),
                not_shown(0, &format!("{container}.env[0].value")),
            ),
            (
                Box::new(|d| d["steps"][0]["manifest"]["spec"]["template"]["spec"]["containers"][0]["args"][1] = json!("8080")),
                not_shown(0, &format!("{container}.args[1]")),
            ),
            (
                Box::new(|d| d["steps"][0]["manifest"]["spec"]["template"]["spec"]["containers"][0]["args"].as_array_mut().unwrap().pop().map(drop).unwrap()),
                not_shown(0, &format!("{container}.args")),
            ),
            (
                Box::new(|d| d["steps"][0]["manifest"]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][1]["mountPath"] = json!("/etc")),
                not_shown(0, &format!("{container}.volumeMounts[1].mountPath")),
            ),
            (
                Box::new(|d| d["steps"][0]["manifest"]["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"] = json!("2Gi")),
                not_shown(0, &format!("{container}.resources.requests.memory")),
            ),
            (
                Box::new(|d| d["steps"][0]["manifest"]["spec"]["template"]["spec"]["containers"].as_array_mut().unwrap().push(json!({"name": "miner", "image": "evil"}))),
                not_shown(0, "spec.template.spec.containers[1]"),
            ),
            (
                Box::new(|d| d["steps"][0].as_object_mut().unwrap().remove("after").map(drop).unwrap()),
                "plan.json: steps[0].after: the step updates the object but the plan shows nothing of what it sends".into(),
            ),
            (
                Box::new(|d| d["steps"][1]["manifest"]["data"]["x"] = json!("2")),
                not_shown(1, "data.x"),
            ),
            (
                Box::new(|d| d["steps"][1]["manifest"]["data"].as_object_mut().unwrap().clear()),
                "plan.json: steps[1].manifest: the manifest differs at data.x from the object the plan shows".into(),
            ),
            (
                Box::new(|d| d["steps"][2]["manifest"]["spec"]["ports"][0]["port"] = json!(81)),
                not_shown(2, "spec.ports[0].port"),
            ),
            (
                Box::new(|d| d["steps"][2]["after"] = d["steps"][1]["manifest"].clone()),
                "plan.json: steps[2].after: the step changes nothing but the plan shows a change".into(),
            ),
        ];
        for (edit, want) in cases {
            let got = edited(&plan, edit);
            assert_eq!(got, want);
            for secret in ["hunter2", "stolen", "evil"] {
                assert!(!got.contains(secret), "{got}");
            }
        }
        // Edited on both sides alike, the plan shows what it sends: only a signature tells that
        // plan apart from the one that was made.
        let mut doc: Value = serde_json::from_str(&text).unwrap();
        for side in ["manifest", "after"] {
            doc["steps"][1][side]["data"]["x"] = json!("2");
        }
        let both = serde_json::to_string(&doc).unwrap();
        assert!(parse_with_key("plan.json", both.as_bytes(), None).is_ok());
    }

    /// A claim-template resize applies a retention manifest first: it is the step's manifest
    /// with `whenDeleted: Retain` and the live templates, or the plan was edited.
    #[test]
    fn a_resize_sends_only_the_retention_manifest_it_is_made_from() {
        let sts = |size: &str, image: &str| {
            object(
                Kind::StatefulSet,
                "db",
                json!({"spec": {"replicas": 1, "serviceName": "db",
                    "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"},
                    "template": {"spec": {"containers": [{"name": "db", "image": image}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"},
                        "spec": {"resources": {"requests": {"storage": size}}}}]}}),
            )
        };
        let mut step = crate::plan::ops::tests::step(Kind::StatefulSet, "db", Action::Resize);
        step.manifest = sts("2Gi", "db:2");
        step.before = Some(sts("1Gi", "db:1"));
        let mut after = step.before.clone().unwrap();
        crate::plan::compute::overlay(&mut after, &step.manifest);
        step.after = Some(after);
        step.resize = Some(crate::plan::ResizePlan {
            claims: vec![crate::plan::ClaimResize {
                name: "data-db-0".into(),
                from: "1Gi".into(),
                to: "2Gi".into(),
            }],
            retain_first: true,
            retain_manifest: Some(crate::plan::build::retain_manifest(
                &step.manifest,
                step.before.as_ref(),
            )),
            pods: Vec::new(),
            restart_pods: false,
        });
        let plan = Plan::new("s".into(), "ns".into(), "https://x".into(), vec![step]);
        let text = crate::render::plan_file(&plan);
        assert_eq!(
            parse_with_key("plan.json", text.as_bytes(), None).unwrap(),
            plan
        );
        let image = "/spec/template/spec/containers/0/image";
        assert_eq!(
            edited(&plan, |d| *d["steps"][0]["manifest"]
                .pointer_mut(image)
                .unwrap() = json!("evil")),
            "plan.json: steps[0].manifest: the manifest sets spec.template.spec.containers[0].image to a value the plan does not show"
        );
        assert_eq!(
            edited(&plan, |d| *d["steps"][0]["resize"]["retain_manifest"]
                .pointer_mut(image)
                .unwrap() = json!("evil")),
            "plan.json: steps[0].resize.retain_manifest: the manifest the resize applies first is not the step's manifest with whenDeleted: Retain"
        );
    }
}
